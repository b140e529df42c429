// The clinic live board: three panels, each one of the notifier's snapshot lists
// (issue 12: load, then follow). On load the page takes each list from GET
// /v1/snapshot/{list} (following its next cursors), fills its panel, then follows the
// Socket.IO events from the smallest list's H (auth.since): each list skips the events
// up to its own H, which its snapshot already holds, and applies the rest by the lists'
// membership rules: an appointment is in today's list while its date is today (UTC)
// and it is not deleted, in the check-in queue while its status is Check-in and it is
// not deleted; a doctor is listed until deleted. An event carries its row as committed,
// so each list upserts or removes the row by its rule, and *.deleted removes it.
// Events come in id order per connection; a list ignores any event at or below the
// last one it applied, so a replay never brings back an older state. A dropped
// connection resumes by Socket.IO's own recovery; when the server cannot resume
// (notifier.resync, a reconnection it did not recover, or a new UTC day) the page
// takes the snapshots again. No framework, no build step. The access token lives in
// this closure and in the tab's sessionStorage (so that a reload reconnects), never in
// persistent storage, cookies or the URL (it is removed from the address bar as soon as it
// is read); signing out or a token the server refuses clears it. The page speaks
// pt-BR or English, after the browser's languages (STRINGS), with 24-hour times.
(function () {
  'use strict';

  var RECOVERED_FOR = 8000; // ms the "Recovered" state shows before "Live"
  var CHECKIN = 'Check-in'; // the status of the patients in the queue (seed 001)
  var SNAPSHOT_PATH = '/v1/snapshot/';
  var RETRY_AFTER = 5; // s before taking the lists again after a 503 without Retry-After
  var CURSOR_RESTARTS = 2; // a list restarts this often when its cursor expires (410)

  var APPOINTMENT_EVENTS = [
    'appointments.created', 'appointments.updated', 'appointments.status.changed',
    'appointments.checkin', 'appointments.serving', 'appointments.finished', 'appointments.deleted',
  ];
  var DOCTOR_EVENTS = ['doctors.created', 'doctors.updated', 'doctors.busy', 'doctors.deleted'];
  var REMOVES = { 'appointments.deleted': true, 'doctors.deleted': true };

  // LISTS are the panels: the snapshot list each shows, the table whose events feed
  // it, the key only a whole payload has (a partial one, {id, accountId}, is a row
  // gone before it could be read: its delete follows), the membership rule, the order
  // (the list's own: a live row takes its place as a reload would put it) and the row.
  var LISTS = [
    { name: 'appointments.today', title: 'listAppointments', panel: 'appointments', table: 'appointments', whole: 'status',
      member: isToday, order: byDay, row: appointmentRow },
    { name: 'appointments.checkin', title: 'listQueue', panel: 'queue', table: 'appointments', whole: 'status',
      member: isCheckedIn, order: byArrival, row: queuedRow },
    { name: 'doctors', title: 'listDoctors', panel: 'doctors', table: 'doctors', whole: 'doctorProcedures',
      member: isListed, order: byName, row: doctorRow },
  ];

  var $ = function (id) { return document.getElementById(id); };

  // ---- language -------------------------------------------------------------------

  // STRINGS holds every text the page shows, per language; index.html's elements with
  // data-i18n (data-i18n-aria: their aria-label) take theirs on start. Status names are
  // the clinic's (Portuguese in the seed): English shows the seed's in English.
  var STRINGS = {
    en: {
      title: 'Clinic live board',
      loading: 'Loading lists', connecting: 'Connecting', live: 'Live', reconnecting: 'Reconnecting',
      recovered: 'Recovered', auth: 'Auth error', offline: 'Disconnected', idle: 'Not connected',
      headerConnecting: 'connecting…', headerLive: function (t) { return 'live since ' + t; },
      headerReconnecting: 'reconnecting…', headerAuth: 'auth error, not connected', headerOffline: 'not connected',
      eventsReceived: 'events received', noneYet: 'none yet', last: function (a) { return 'last ' + a; },
      lastEventId: function (id) { return 'Last event id ' + id; },
      changeToken: 'Change token', enterToken: 'Enter token', signOut: 'Sign out', dismiss: 'Dismiss',
      account: function (id) { return 'Account ' + id; },
      validUntil: function (t) { return 'token valid until ' + t; },
      apptTitle: "Today's appointments", apptSub: 'Booked for today (UTC), by time',
      apptEmpty: 'Nothing booked for today',
      apptEmptyText: "Today's appointments appear here, and new ones the moment the clinic saves them.",
      queueTitle: 'Check-in queue', queueSub: 'Patients waiting, in order of arrival', queueEmpty: 'Nobody waiting',
      queueEmptyText: 'Patients join the queue when reception checks them in.',
      doctorsTitle: 'Doctors', doctorsSub: 'By name, with their procedures', doctorsEmpty: 'No doctors yet',
      doctorsEmptyText: "The clinic's doctors appear here, with the procedures they perform and whether they are busy.",
      dialogTitle: 'Connect to the live board',
      dialogText: "Paste an access token for your clinic's account. The page keeps it for this tab only (sessionStorage) until you sign out or close the tab.",
      tokenLabel: 'Access token', hintTesting: 'Testing?', hintPrints: 'prints one.', cancel: 'Cancel', connect: 'Connect',
      pasteFirst: 'Paste a token first.', unknownReason: 'unknown reason',
      refused: function (r) { return 'The server refused this token: ' + r + '.'; },
      expired: 'The token expired. Paste a fresh one to continue where the board left off.',
      tokenExpired: 'token expired', listsNotLoaded: 'lists not loaded',
      couldNotLoadLists: function (e) { return 'Could not load the lists: ' + e + '.'; },
      couldNotLoad: function (title, list, status, reason) {
        return 'Could not load ' + title + ' (' + list + '): ' + (status ? 'HTTP ' + status + ', ' : '') + reason;
      },
      tryingAgain: function (w) { return ' Trying again in ' + w + ' s.'; },
      retry: 'Retry', retryNow: 'Retry now', reconnect: 'Reconnect',
      noClient: 'The Socket.IO client did not load; reload the page.',
      serverEnded: function (r) { return 'The server ended the connection' + (r ? ' (' + r + ')' : '') + '.'; },
      attempt: function (n) { return 'attempt ' + n; },
      listAppointments: "today's appointments", listQueue: 'the check-in queue', listDoctors: 'the doctors',
      unknownStatus: 'Unknown', appointmentN: function (id) { return 'Appointment #' + id; },
      unnamedPatient: 'Unnamed patient', noDoctor: 'No doctor', detailsUnavailable: 'Details unavailable',
      doctorN: function (id) { return 'Doctor #' + id; }, busy: 'Busy', noProcedures: 'No procedures yet',
      justNow: 'just now', secondsAgo: function (n) { return n + ' s ago'; },
      minutesAgo: function (n) { return n + ' min ago'; }, hoursAgo: function (n) { return n + ' h ago'; },
      justArrived: 'just arrived', waiting: function (m) { return 'waiting ' + m + ' min'; },
      waitingHours: function (h, m) { return 'waiting ' + h + ' h ' + m + ' min'; },
      statuses: { Agendado: 'Scheduled', 'Check-in': 'Checked in', 'Em atendimento': 'In service',
        Finalizado: 'Finished', Cancelado: 'Cancelled' },
      reasons: {}, // the server's own words
    },
    'pt-BR': {
      title: 'Painel ao vivo da clínica',
      loading: 'Carregando listas', connecting: 'Conectando', live: 'Ao vivo', reconnecting: 'Reconectando',
      recovered: 'Recuperado', auth: 'Erro de autenticação', offline: 'Desconectado', idle: 'Não conectado',
      headerConnecting: 'conectando…', headerLive: function (t) { return 'ao vivo desde ' + t; },
      headerReconnecting: 'reconectando…', headerAuth: 'erro de autenticação, não conectado', headerOffline: 'não conectado',
      eventsReceived: 'eventos recebidos', noneYet: 'nenhum ainda', last: function (a) { return 'último ' + a; },
      lastEventId: function (id) { return 'Id do último evento ' + id; },
      changeToken: 'Trocar token', enterToken: 'Informar token', signOut: 'Sair', dismiss: 'Fechar',
      account: function (id) { return 'Conta ' + id; },
      validUntil: function (t) { return 'token válido até ' + t; },
      apptTitle: 'Consultas de hoje', apptSub: 'Marcadas para hoje (UTC), por horário',
      apptEmpty: 'Nada marcado para hoje',
      apptEmptyText: 'As consultas de hoje aparecem aqui, e as novas assim que a clínica as salva.',
      queueTitle: 'Fila de check-in', queueSub: 'Pacientes aguardando, por ordem de chegada', queueEmpty: 'Ninguém aguardando',
      queueEmptyText: 'Os pacientes entram na fila quando a recepção faz o check-in.',
      doctorsTitle: 'Médicos', doctorsSub: 'Por nome, com seus procedimentos', doctorsEmpty: 'Nenhum médico ainda',
      doctorsEmptyText: 'Os médicos da clínica aparecem aqui, com os procedimentos que realizam e se estão ocupados.',
      dialogTitle: 'Conectar ao painel ao vivo',
      dialogText: 'Cole um token de acesso da conta da sua clínica. A página o guarda só nesta aba (sessionStorage) até você sair ou fechar a aba.',
      tokenLabel: 'Token de acesso', hintTesting: 'Testando?', hintPrints: 'gera um.', cancel: 'Cancelar', connect: 'Conectar',
      pasteFirst: 'Cole um token primeiro.', unknownReason: 'motivo desconhecido',
      refused: function (r) { return 'O servidor recusou este token: ' + r + '.'; },
      expired: 'O token expirou. Cole um novo para continuar de onde o painel parou.',
      tokenExpired: 'token expirado', listsNotLoaded: 'listas não carregadas',
      couldNotLoadLists: function (e) { return 'Não foi possível carregar as listas: ' + e + '.'; },
      couldNotLoad: function (title, list, status, reason) {
        return 'Não foi possível carregar ' + title + ' (' + list + '): ' + (status ? 'HTTP ' + status + ', ' : '') + reason;
      },
      tryingAgain: function (w) { return ' Nova tentativa em ' + w + ' s.'; },
      retry: 'Tentar de novo', retryNow: 'Tentar agora', reconnect: 'Reconectar',
      noClient: 'O cliente Socket.IO não carregou; recarregue a página.',
      serverEnded: function (r) { return 'O servidor encerrou a conexão' + (r ? ' (' + r + ')' : '') + '.'; },
      attempt: function (n) { return 'tentativa ' + n; },
      listAppointments: 'as consultas de hoje', listQueue: 'a fila de check-in', listDoctors: 'os médicos',
      unknownStatus: 'Desconhecido', appointmentN: function (id) { return 'Consulta nº ' + id; },
      unnamedPatient: 'Paciente sem nome', noDoctor: 'Sem médico', detailsUnavailable: 'Detalhes indisponíveis',
      doctorN: function (id) { return 'Médico nº ' + id; }, busy: 'Ocupado', noProcedures: 'Nenhum procedimento ainda',
      justNow: 'agora mesmo', secondsAgo: function (n) { return 'há ' + n + ' s'; },
      minutesAgo: function (n) { return 'há ' + n + ' min'; }, hoursAgo: function (n) { return 'há ' + n + ' h'; },
      justArrived: 'acabou de chegar', waiting: function (m) { return 'aguardando ' + m + ' min'; },
      waitingHours: function (h, m) { return 'aguardando ' + h + ' h ' + m + ' min'; },
      statuses: {},
      // The server's reasons (tokens refused, connections ended, lists refused), which
      // it words in English; a reason not listed here is shown as the server said it.
      reasons: {
        'missing token': 'token ausente', 'token too large': 'token grande demais',
        'malformed token': 'token malformado', 'duplicate header parameter': 'parâmetro de cabeçalho duplicado',
        'duplicate claim': 'claim duplicada', 'unsupported critical header': 'cabeçalho crítico não suportado',
        'unencoded payload not supported': 'payload não codificado não suportado',
        'unexpected signing algorithm': 'algoritmo de assinatura inesperado', 'invalid signature': 'assinatura inválida',
        'non-canonical signature (high S)': 'assinatura não canônica (S alto)',
        'unknown signing key': 'chave de assinatura desconhecida',
        'signing keys unavailable': 'chaves de assinatura indisponíveis', 'token expired': 'token expirado',
        'token not valid yet': 'token ainda não válido', 'missing or invalid account claim': 'claim de conta ausente ou inválida',
        'token from another issuer': 'token de outro emissor', 'token for another audience': 'token de outro público',
        'too many connections': 'conexões demais', 'too many connections for this account': 'conexões demais para esta conta',
        'slow consumer': 'cliente lento', 'server shutting down': 'servidor sendo desligado',
        'server error': 'erro no servidor', 'too many client messages': 'mensagens demais do cliente',
        'too many snapshots in progress: retry': 'consultas de listas demais em andamento: tente de novo',
        'snapshot failed: the database is unavailable, retry': 'consulta de lista falhou: o banco de dados está indisponível, tente de novo',
      },
    },
  };

  // LANG is pt-BR for a browser that prefers any Portuguese, English otherwise.
  var LANG = (function () {
    var langs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || ''];
    for (var i = 0; i < langs.length; i++) {
      if (/^pt\b/i.test(String(langs[i]))) return 'pt-BR';
      if (/^en\b/i.test(String(langs[i]))) return 'en';
    }
    return 'en';
  })();
  var T = STRINGS[LANG];

  // say is a reason the server gave, in the page's language.
  function say(reason) {
    return (reason && T.reasons[reason]) || reason;
  }

  // Times are 24-hour in either language.
  var timeFormat = new Intl.DateTimeFormat(LANG, { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  var todayFormat = new Intl.DateTimeFormat(LANG, { weekday: 'long', day: 'numeric', month: 'long' });
  var dayFormat = new Intl.DateTimeFormat(LANG, { day: 'numeric', month: 'short' });
  var numberFormat = new Intl.NumberFormat(LANG);

  function translate() {
    document.documentElement.lang = LANG;
    Array.prototype.forEach.call(document.querySelectorAll('[data-i18n]'), function (e) {
      var s = T[e.dataset.i18n];
      if (typeof s === 'string') e.textContent = s;
    });
    Array.prototype.forEach.call(document.querySelectorAll('[data-i18n-aria]'), function (e) {
      var s = T[e.dataset.i18nAria];
      if (typeof s === 'string') e.setAttribute('aria-label', s);
    });
  }

  var state = {
    token: null,
    account: null, // from the token's claims, for display and to keep lists per account
    socket: null,
    connectedOnce: false,
    serverReason: null, // from notifier.disconnect, explains the disconnect that follows
    generation: 0, // one per load: answers to an older load are dropped
    day: null, // the UTC date the lists were taken on ("today")
    since: null, // the socket's auth.since: the smallest H of the lists
    lists: {}, // by list name: {h, last, rows: Map id -> {item, el}}
    statuses: new Map(), // id -> {id, name, color, at}: the newest the page has seen
    events: 0,
    lastEventAt: 0,
    lastOffset: null,
  };
  var recoveredTimer = 0;
  var liveSince = null; // when the connection last became live; null while it is not
  var TOKEN_KEY = 'notifier.token'; // the tab's sessionStorage
  var retryTimer = 0;

  // ---- token ----------------------------------------------------------------------

  // takeTokenFromURL reads ?token= and removes it from the address bar and history.
  function takeTokenFromURL() {
    var url = new URL(window.location.href);
    var token = url.searchParams.get('token');
    if (token === null) return null;
    url.searchParams.delete('token');
    window.history.replaceState(window.history.state, '', url.pathname + url.search + url.hash);
    token = token.trim();
    return token || null;
  }

  // The token is kept for the tab (sessionStorage: this tab only, gone when it closes,
  // never sent by the browser), so that a reload reconnects; storage may be disabled.
  function storedToken() {
    try {
      return window.sessionStorage.getItem(TOKEN_KEY) || null;
    } catch (e) {
      return null;
    }
  }

  function storeToken(token) {
    try {
      if (token) window.sessionStorage.setItem(TOKEN_KEY, token);
      else window.sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) {
      // storage disabled: the token stays in memory only
    }
  }

  // forgetToken drops a token the server refused: a reload asks for another.
  function forgetToken() {
    storeToken(null);
  }

  // signOut forgets the token and leaves the board, asking for a token.
  function signOut() {
    state.generation++;
    window.clearTimeout(retryTimer);
    closeSocket();
    storeToken(null);
    state.token = null;
    resetLists();
    hideBanner();
    showAccount();
    setConn('idle');
    openTokenDialog('');
  }

  // claims decodes the token's payload for display only; the server verifies it.
  function claims(token) {
    try {
      var part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      var json = decodeURIComponent(Array.prototype.map.call(atob(part), function (c) {
        return '%' + ('0' + c.charCodeAt(0).toString(16)).slice(-2);
      }).join(''));
      var c = JSON.parse(json);
      return c && typeof c === 'object' ? c : null;
    } catch (e) {
      return null;
    }
  }

  function showAccount() {
    var c = state.token ? claims(state.token) : null;
    var account = c && (c.accountId !== undefined ? String(c.accountId) : null);
    state.account = account;
    $('token-open').textContent = state.token ? T.changeToken : T.enterToken;
    $('sign-out').hidden = !state.token;
    $('account').hidden = !account;
    if (!account) return;
    $('account-name').textContent = T.account(account);
    var exp = c && typeof c.exp === 'number' ? new Date(c.exp * 1000) : null;
    $('account-exp').textContent = exp ? T.validUntil(hhmm(exp)) : '';
  }

  function openTokenDialog(message) {
    var dialog = $('token-dialog');
    var error = $('token-error');
    error.textContent = message || '';
    error.hidden = !message;
    $('token-input').value = '';
    $('token-cancel').hidden = !state.token;
    if (!dialog.open) dialog.showModal();
    $('token-input').focus();
  }

  function closeTokenDialog() {
    var dialog = $('token-dialog');
    if (dialog.open) dialog.close();
    $('token-input').value = '';
  }

  // ---- connection -----------------------------------------------------------------

  // HEADER is the header's wording of each connection state: it reads live only
  // while the connection is.
  var HEADER = {
    loading: 'connecting', connecting: 'connecting', live: 'live', recovered: 'live',
    reconnecting: 'reconnecting', auth: 'auth', offline: 'offline', idle: 'offline',
  };
  var HEADER_TEXT = {
    connecting: 'headerConnecting', reconnecting: 'headerReconnecting', auth: 'headerAuth', offline: 'headerOffline',
  };

  function setConn(s, detail) {
    var el = $('conn');
    el.dataset.state = s;
    $('conn-label').textContent = T[s] + (detail ? ' · ' + detail : '');
    var header = HEADER[s];
    if (header !== 'live') liveSince = null;
    else if (!liveSince) liveSince = new Date();
    var since = $('live-since');
    since.dataset.state = header;
    since.textContent = header === 'live' ? T.headerLive(hhmm(liveSince)) : T[HEADER_TEXT[header]];
    window.clearTimeout(recoveredTimer);
    if (s === 'recovered') {
      recoveredTimer = window.setTimeout(function () {
        if (el.dataset.state === 'recovered') setConn('live');
      }, RECOVERED_FOR);
    }
  }

  function connect(token) {
    var previous = state.account;
    state.token = token;
    storeToken(token);
    showAccount();
    closeTokenDialog();
    hideBanner();
    if (state.socket && previous === state.account) {
      // Same account with a fresh token: the same socket reconnects and asks the
      // server to recover what was missed meanwhile.
      if (!state.socket.connected) {
        setConn('connecting');
        state.socket.connect();
      }
      return;
    }
    if (previous !== state.account) resetLists();
    load();
  }

  function closeSocket() {
    if (!state.socket) return;
    state.socket.off();
    state.socket.io.off();
    state.socket.disconnect();
    state.socket = null;
  }

  // load takes every list's snapshot, then follows from the smallest H. The lists
  // shown stay until the new ones are in.
  function load() {
    var gen = ++state.generation;
    window.clearTimeout(retryTimer);
    closeSocket();
    setConn('loading');
    var day = utcDay(new Date());
    Promise.all(LISTS.map(function (l) { return snapshot(l, gen); })).then(function (snaps) {
      if (gen !== state.generation) return;
      resetLists();
      state.day = day;
      snaps.forEach(fill);
      state.since = Math.min.apply(null, snaps.map(function (s) { return s.h; }));
      openSocket();
    }, function (err) {
      if (gen === state.generation && !(err instanceof Superseded)) refused(err);
    });
  }

  function Superseded() {}

  // SnapshotError is a list the server did not give: its HTTP status (0: no answer)
  // and reason.
  function SnapshotError(list, status, reason, retryAfter) {
    this.list = list;
    this.status = status;
    this.reason = reason;
    this.retryAfter = retryAfter;
  }

  // snapshot fetches every page of list l: {list, h, items}.
  async function snapshot(l, gen) {
    for (var restarts = 0; ; restarts++) {
      var items = [];
      var h = null;
      var cursor = null;
      try {
        do {
          if (gen !== state.generation) throw new Superseded();
          var page = await snapshotPage(l, cursor);
          var n = position(page.since);
          if (isNaN(n) || !Array.isArray(page.items)) throw new SnapshotError(l, 200, 'malformed answer');
          if (h !== null && n !== h) throw new SnapshotError(l, 200, 'pages of different snapshots');
          h = n;
          Array.prototype.push.apply(items, page.items);
          cursor = typeof page.next === 'string' && page.next ? page.next : null;
        } while (cursor);
        return { list: l, h: h, items: items };
      } catch (err) {
        // A cursor that expired mid-way (410): the list starts over, a few times.
        if (!(err instanceof SnapshotError && err.status === 410 && cursor && restarts < CURSOR_RESTARTS)) throw err;
      }
    }
  }

  async function snapshotPage(l, cursor) {
    var url = SNAPSHOT_PATH + encodeURIComponent(l.name) + (cursor ? '?cursor=' + encodeURIComponent(cursor) : '');
    var resp;
    try {
      resp = await window.fetch(url, {
        headers: { Authorization: 'Bearer ' + state.token, Accept: 'application/json' },
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch (e) {
      throw new SnapshotError(l, 0, 'no answer from the server');
    }
    var body = null;
    try {
      body = await resp.json();
    } catch (e) {
      body = null;
    }
    if (!resp.ok) {
      var reason = body && typeof body.error === 'string' ? body.error : resp.statusText;
      throw new SnapshotError(l, resp.status, reason, Number(resp.headers.get('Retry-After')));
    }
    if (!body || typeof body !== 'object') throw new SnapshotError(l, resp.status, 'malformed answer');
    return body;
  }

  // refused says why a list could not be loaded: a token the server refuses asks for
  // another, a busy server (503) is asked again after Retry-After, anything else
  // offers a retry.
  function refused(err) {
    if (!(err instanceof SnapshotError)) {
      setConn('offline', T.listsNotLoaded);
      showBanner(T.couldNotLoadLists(String(err)), T.retry, load);
      return;
    }
    var what = T.couldNotLoad(T[err.list.title], err.list.name, err.status, say(err.reason) || T.unknownReason);
    if (err.status === 401) {
      forgetToken();
      setConn('auth', say(err.reason));
      openTokenDialog(T.refused(say(err.reason) || T.unknownReason));
      return;
    }
    if (err.status === 503) {
      var wait = err.retryAfter > 0 ? Math.min(err.retryAfter, 300) : RETRY_AFTER;
      setConn('offline', T.listsNotLoaded);
      showBanner(what + '.' + T.tryingAgain(wait), T.retryNow, load);
      retryTimer = window.setTimeout(function () { hideBanner(); load(); }, wait * 1000);
      return;
    }
    setConn('offline', T.listsNotLoaded);
    showBanner(what + '.', T.retry, load);
  }

  function openSocket() {
    if (typeof window.io !== 'function') {
      setConn('offline');
      showBanner(T.noClient);
      return;
    }
    state.connectedOnce = false;
    setConn('connecting');
    // A new manager, so that no recovery from an earlier load is attempted: this
    // socket starts after the snapshots. Its own reconnections recover (pid, offset),
    // which the server prefers to since.
    var socket = window.io({
      auth: function (cb) { cb({ token: state.token, since: state.since }); },
      forceNew: true,
      reconnectionDelay: 500,
      reconnectionDelayMax: 10000,
    });
    state.socket = socket;

    socket.on('connect', function () {
      state.serverReason = null;
      if (socket.recovered) {
        setConn('recovered');
      } else if (state.connectedOnce) {
        // Back, but not where it left off: what was missed meanwhile is only in a new
        // snapshot.
        load();
        return;
      } else {
        setConn('live');
      }
      state.connectedOnce = true;
    });
    socket.on('disconnect', function (reason) {
      if (socket.active) {
        setConn('reconnecting');
        return;
      }
      if (reason === 'io client disconnect') return;
      if (state.serverReason === 'token expired') {
        forgetToken();
        setConn('auth', T.tokenExpired);
        openTokenDialog(T.expired);
        return;
      }
      setConn('offline');
      showBanner(T.serverEnded(say(state.serverReason)), T.reconnect, function () {
        setConn('connecting');
        socket.connect();
      });
    });
    socket.on('connect_error', function (err) {
      if (socket.active) {
        // A network or server problem: the client retries by itself.
        setConn('reconnecting');
        return;
      }
      // Refused by the server (bad or expired token): the client does not retry.
      forgetToken();
      setConn('auth', say(err && err.message));
      openTokenDialog(T.refused(say(err && err.message) || T.unknownReason));
    });
    socket.io.on('reconnect_attempt', function (n) {
      setConn('reconnecting', n > 1 ? T.attempt(n) : '');
    });

    // The server cannot replay from where the lists are: take them again.
    socket.on('notifier.resync', load);
    socket.on('notifier.disconnect', function (info) {
      state.serverReason = (info && info.reason) || null;
    });

    APPOINTMENT_EVENTS.forEach(function (event) {
      socket.on(event, function (appointment, offset) { onEvent('appointments', event, appointment, offset); });
    });
    DOCTOR_EVENTS.forEach(function (event) {
      socket.on(event, function (doctor, offset) { onEvent('doctors', event, doctor, offset); });
    });
  }

  // ---- lists ----------------------------------------------------------------------

  // position is an event id (a decimal string or a number below 2^53) as a number;
  // NaN when it is none.
  function position(v) {
    if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : NaN;
    return typeof v === 'string' && /^[0-9]{1,16}$/.test(v) ? Number(v) : NaN;
  }

  function utcDay(d) {
    return d.toISOString().slice(0, 10);
  }

  function isToday(a) {
    return !a.deletedAt && typeof a.date === 'string' && a.date.slice(0, 10) === state.day;
  }

  function isCheckedIn(a) {
    return !a.deletedAt && !!a.status && a.status.name === CHECKIN;
  }

  function isListed(d) {
    return !d.deletedAt;
  }

  function text(v) {
    return v === undefined || v === null ? '' : String(v);
  }

  function compare(x, y) {
    return x < y ? -1 : x > y ? 1 : 0;
  }

  function byID(a, b) {
    return Number(a.id) - Number(b.id);
  }

  function byDay(a, b) {
    return compare(text(a.date), text(b.date)) || compare(text(a.startTime), text(b.startTime)) || byID(a, b);
  }

  function byArrival(a, b) {
    return compare(text(a.updatedAt), text(b.updatedAt)) || byID(a, b);
  }

  function byName(a, b) {
    return text(a.name).localeCompare(text(b.name)) || byID(a, b);
  }

  // enriched tells a whole payload from a partial one ({id, accountId} only: the row
  // could not be read), which must not replace what the page shows.
  function enriched(obj, key) {
    return Object.prototype.hasOwnProperty.call(obj, key);
  }

  // fill shows a list's snapshot, in the server's order.
  function fill(s) {
    var l = s.list;
    var list = { h: s.h, last: s.h, rows: new Map() };
    state.lists[l.name] = list;
    var panel = $(l.panel);
    s.items.forEach(function (item) {
      if (!item || item.id === undefined || item.id === null) return;
      if (l.whole === 'status') noteStatus(item.status, s.h);
      var id = String(item.id);
      var old = list.rows.get(id);
      if (old) old.el.remove();
      var row = l.row(item);
      list.rows.set(id, { item: item, el: row });
      panel.appendChild(row);
    });
    panel.dataset.since = String(s.h);
    shown(l, list);
  }

  // onEvent applies one event to every list of its table.
  function onEvent(table, event, item, offset) {
    counted(offset);
    if (!item || typeof item !== 'object' || item.id === undefined || item.id === null) return;
    var n = position(offset);
    var id = String(item.id);
    var noted = false;
    LISTS.forEach(function (l) {
      var list = state.lists[l.name];
      if (l.table !== table || !list) return;
      if (!isNaN(n)) {
        if (n <= list.last) return; // in the snapshot, or applied already
        list.last = n;
      }
      var whole = enriched(item, l.whole);
      if (whole && l.whole === 'status' && !noted) {
        noteStatus(item.status, n);
        noted = true;
      }
      if (REMOVES[event] || (whole && !l.member(item))) {
        remove(l, list, id);
      } else if (whole) {
        upsert(l, list, id, item);
      }
    });
  }

  // upsert shows a row's new state where the list's order puts it.
  function upsert(l, list, id, item) {
    var panel = $(l.panel);
    var old = list.rows.get(id);
    var row = fresh(l.row(item));
    if (old) {
      list.rows.delete(id);
      old.el.remove();
    }
    var next = null;
    for (var c = panel.lastElementChild; c; c = c.previousElementSibling) {
      var other = list.rows.get(c.dataset.id);
      if (other && l.order(item, other.item) >= 0) break;
      next = c;
    }
    panel.insertBefore(row, next);
    list.rows.set(id, { item: item, el: row });
    shown(l, list);
  }

  function remove(l, list, id) {
    var old = list.rows.get(id);
    if (!old) return;
    list.rows.delete(id);
    old.el.remove();
    shown(l, list);
  }

  // shown updates a panel's count, its empty state and, for the queue, the places.
  function shown(l, list) {
    if (l.panel === 'queue') {
      Array.prototype.forEach.call($('queue').children, function (row, i) {
        var place = row.querySelector('.position');
        if (place) place.textContent = String(i + 1);
      });
    }
    $(l.panel + '-count').textContent = numberFormat.format(list.rows.size);
    $(l.panel + '-empty').hidden = list.rows.size > 0;
  }

  // noteStatus keeps the newest name and colour of each status, and repaints every
  // chip of a status that changed: statuses are shared, so an event about one row tells
  // the colour of all rows in that status.
  function noteStatus(status, n) {
    if (!status || status.id === undefined || status.id === null) return;
    var id = String(status.id);
    var known = state.statuses.get(id);
    if (known && !isNaN(known.at) && !isNaN(n) && n <= known.at) return;
    state.statuses.set(id, { id: status.id, name: status.name, color: status.color, at: n });
    if (!known || (known.name === status.name && known.color === status.color)) return;
    Array.prototype.forEach.call(document.querySelectorAll('.board .status'), function (chip) {
      if (chip.dataset.status === id) chip.replaceWith(statusChip(status));
    });
  }

  function counted(offset) {
    state.events++;
    state.lastEventAt = Date.now();
    if (typeof offset === 'string') state.lastOffset = offset;
    $('event-count').textContent = numberFormat.format(state.events);
    $('events').title = state.lastOffset ? T.lastEventId(state.lastOffset) : '';
    tick();
  }

  function resetLists() {
    state.lists = {};
    state.statuses = new Map();
    LISTS.forEach(function (l) {
      var panel = $(l.panel);
      panel.textContent = '';
      delete panel.dataset.since;
      $(l.panel + '-count').textContent = '0';
      $(l.panel + '-empty').hidden = false;
    });
  }

  // ---- banner ---------------------------------------------------------------------

  var bannerAction = null;

  function showBanner(text, actionLabel, action) {
    $('banner-text').textContent = text;
    var button = $('banner-action');
    button.hidden = !actionLabel;
    button.textContent = actionLabel || '';
    bannerAction = action || null;
    $('banner').hidden = false;
  }

  function hideBanner() {
    $('banner').hidden = true;
    bannerAction = null;
  }

  // ---- rendering ------------------------------------------------------------------

  function el(tag, className, text) {
    var e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  var validColor = /^#(?:[0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$/;

  // statusChip shows a status with the newest name and colour the page knows for it.
  function statusChip(status) {
    var known = status && status.id !== undefined && status.id !== null ? state.statuses.get(String(status.id)) : null;
    var s = known || status;
    var raw = s && s.name;
    var chip = el('span', 'status', raw ? T.statuses[raw] || raw : T.unknownStatus);
    if (raw) chip.dataset.name = raw;
    if (status && status.id !== undefined && status.id !== null) chip.dataset.status = String(status.id);
    if (s && typeof s.color === 'string' && validColor.test(s.color)) {
      chip.style.setProperty('--c', s.color);
    }
    return chip;
  }

  var money = new Intl.NumberFormat(LANG, { style: 'currency', currency: 'BRL' });

  function price(p) {
    var n = p === null || p === undefined ? NaN : Number(p);
    return isNaN(n) ? '' : money.format(n);
  }

  function procedureOf(appointment) {
    var ap = appointment.appointmentProcedures;
    if (Array.isArray(ap)) ap = ap[0];
    return ap && ap.procedure ? ap.procedure : null;
  }

  function name(obj, fallback) {
    return obj && obj.name ? obj.name : fallback;
  }

  function hhmm(d) {
    return timeFormat.format(d);
  }

  function localDay(d) {
    var m = d.getMonth() + 1;
    var day = d.getDate();
    return d.getFullYear() + '-' + (m < 10 ? '0' : '') + m + '-' + (day < 10 ? '0' : '') + day;
  }

  // fresh marks a row for the arrival highlight.
  function fresh(row) {
    row.classList.add('is-new');
    row.addEventListener('animationend', function () { row.classList.remove('is-new'); }, { once: true });
    return row;
  }

  function appointmentRow(a) {
    var row = el('li', 'row appt');
    row.dataset.id = String(a.id);
    var time = el('div', 'time');
    time.appendChild(el('span', 'time-start', a.startTime || '--:--'));
    time.appendChild(el('span', 'time-end', a.endTime || ''));
    if (typeof a.date === 'string' && a.date.slice(0, 10) !== localDay(new Date())) {
      var d = new Date(a.date.slice(0, 10) + 'T00:00:00');
      if (!isNaN(d)) time.appendChild(el('span', 'time-day', dayFormat.format(d)));
    }
    row.appendChild(time);

    var main = el('div', 'main');
    main.appendChild(el('div', 'name', name(a.patient, a.partial || !a.patient ? T.appointmentN(a.id) : T.unnamedPatient)));
    var proc = procedureOf(a);
    var details = [name(a.doctor, T.noDoctor), proc ? proc.name : null].filter(Boolean).join(' · ');
    main.appendChild(el('div', 'detail', a.doctor || proc ? details : T.detailsUnavailable));
    row.appendChild(main);

    var side = el('div', 'side');
    side.appendChild(statusChip(a.status));
    side.appendChild(el('span', 'price', proc ? price(proc.price) : ''));
    row.appendChild(side);
    return row;
  }

  // queuedRow is a queue row; its wait counts from the check-in (updatedAt), and
  // shown numbers its place.
  function queuedRow(a) {
    var since = Date.parse(a.updatedAt);
    if (isNaN(since) || since > Date.now() + 60000) since = Date.now();
    var row = el('li', 'row queued');
    row.dataset.id = String(a.id);
    row.appendChild(el('span', 'position', ''));
    var main = el('div', 'main');
    main.appendChild(el('div', 'name', name(a.patient, T.appointmentN(a.id))));
    var proc = procedureOf(a);
    var parts = [a.startTime, proc ? proc.name : null, name(a.doctor, null)];
    main.appendChild(el('div', 'detail', parts.filter(Boolean).join(' · ')));
    row.appendChild(main);
    var side = el('div', 'side');
    side.appendChild(statusChip(a.status));
    var wait = el('span', 'wait');
    wait.dataset.since = String(since);
    wait.textContent = waited(since);
    side.appendChild(wait);
    row.appendChild(side);
    return row;
  }

  function initials(n) {
    var words = String(n || '?').replace(/^(Dra?\.)\s+/, '').split(/\s+/).filter(Boolean);
    var first = words[0] ? words[0][0] : '?';
    var last = words.length > 1 ? words[words.length - 1][0] : '';
    return (first + last).toUpperCase();
  }

  function hue(s) {
    var h = 0;
    for (var i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) % 360;
    return h;
  }

  function doctorRow(d) {
    var row = el('li', 'row doctor');
    row.dataset.id = String(d.id);
    row.dataset.busy = d.isBusy === true ? 'true' : 'false';
    var avatar = el('span', 'avatar', initials(d.name));
    avatar.style.setProperty('--h', String(hue(String(d.name || d.id))));
    row.appendChild(avatar);

    var main = el('div', 'main');
    var head = el('div', 'doctor-head');
    head.appendChild(el('span', 'name', name(d, T.doctorN(d.id))));
    if (d.crm) head.appendChild(el('span', 'crm', 'CRM ' + d.crm));
    if (d.isBusy === true) head.appendChild(el('span', 'busy', T.busy));
    main.appendChild(head);
    var contact = [d.email, d.phone].filter(Boolean).join(' · ');
    if (contact) main.appendChild(el('div', 'detail', contact));
    var chips = el('ul', 'chips');
    (Array.isArray(d.doctorProcedures) ? d.doctorProcedures : []).forEach(function (dp) {
      if (!dp || !dp.procedure) return;
      var chip = el('li', 'chip', dp.procedure.name);
      var p = price(dp.procedure.price);
      if (p) chip.appendChild(el('span', 'chip-price', p));
      chips.appendChild(chip);
    });
    if (!chips.children.length) chips.appendChild(el('li', 'chip chip-none', T.noProcedures));
    main.appendChild(chips);
    row.appendChild(main);
    return row;
  }

  // ---- clocks ---------------------------------------------------------------------

  function ago(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 2) return T.justNow;
    if (s < 60) return T.secondsAgo(s);
    var m = Math.floor(s / 60);
    if (m < 60) return T.minutesAgo(m);
    return T.hoursAgo(Math.floor(m / 60));
  }

  function waited(since) {
    var m = Math.floor(Math.max(0, Date.now() - since) / 60000);
    if (m < 1) return T.justArrived;
    if (m < 60) return T.waiting(m);
    return T.waitingHours(Math.floor(m / 60), m % 60);
  }

  var ticks = 0;

  function tick() {
    $('event-age').textContent = state.lastEventAt ? T.last(ago(Date.now() - state.lastEventAt)) : T.noneYet;
    if (ticks++ % 10 !== 0) return;
    Array.prototype.forEach.call($('queue').querySelectorAll('.wait'), function (w) {
      w.textContent = waited(Number(w.dataset.since));
    });
    // A new UTC day changes which appointments are today's, with no event to say so.
    if (state.socket && state.day && utcDay(new Date()) !== state.day) load();
  }

  // ---- start ----------------------------------------------------------------------

  function start() {
    translate();
    $('today').textContent = todayFormat.format(new Date());

    $('token-form').addEventListener('submit', function (e) {
      e.preventDefault();
      var token = $('token-input').value.replace(/\s+/g, '');
      if (!token) {
        $('token-error').textContent = T.pasteFirst;
        $('token-error').hidden = false;
        return;
      }
      connect(token);
    });
    $('token-cancel').addEventListener('click', closeTokenDialog);
    $('token-open').addEventListener('click', function () { openTokenDialog(''); });
    $('sign-out').addEventListener('click', signOut);
    $('banner-close').addEventListener('click', hideBanner);
    $('banner-action').addEventListener('click', function () {
      var action = bannerAction;
      hideBanner();
      if (action) action();
    });
    window.setInterval(tick, 1000);

    var token = takeTokenFromURL() || storedToken();
    if (token) {
      connect(token);
    } else {
      setConn('idle');
      showAccount();
      openTokenDialog('');
    }
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
