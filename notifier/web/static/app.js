// The clinic live board: three panels fed by the notifier's Socket.IO events, with the
// seeds' handler rules (000 appointments.created, 001 appointments.checkin, 002
// doctors.created). No framework, no build step. The access token lives in this
// closure only: never in storage, cookies or the URL (it is removed from the address
// bar as soon as it is read).
(function () {
  'use strict';

  var MAX_ROWS = 300; // rows kept per panel; older ones scroll out of memory
  var RECOVERED_FOR = 8000; // ms the "Recovered" state shows before "Live"

  var $ = function (id) { return document.getElementById(id); };

  var state = {
    token: null,
    account: null, // from the token's claims, for display and to keep lists per account
    socket: null,
    connectedOnce: false,
    serverReason: null, // from notifier.disconnect, explains the disconnect that follows
    appointments: [],
    queue: [],
    doctors: [],
    totals: { appointments: 0, doctors: 0 },
    events: 0,
    lastEventAt: 0,
    lastOffset: null,
  };
  var recoveredTimer = 0;

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
    $('token-open').textContent = state.token ? 'Change token' : 'Enter token';
    $('account').hidden = !account;
    if (!account) return;
    $('account-name').textContent = 'Account ' + account;
    var exp = c && typeof c.exp === 'number' ? new Date(c.exp * 1000) : null;
    $('account-exp').textContent = exp ? 'token valid until ' + hhmm(exp) : '';
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

  var CONN_LABELS = {
    connecting: 'Connecting',
    live: 'Live',
    reconnecting: 'Reconnecting',
    recovered: 'Recovered',
    auth: 'Auth error',
    offline: 'Disconnected',
    idle: 'Not connected',
  };

  function setConn(s, detail) {
    var el = $('conn');
    el.dataset.state = s;
    $('conn-label').textContent = CONN_LABELS[s] + (detail ? ' · ' + detail : '');
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
    if (state.socket) {
      state.socket.off();
      state.socket.io.off();
      state.socket.disconnect();
      state.socket = null;
      resetLists();
    }
    if (typeof window.io !== 'function') {
      setConn('offline');
      showBanner('The Socket.IO client did not load; reload the page.');
      return;
    }
    state.connectedOnce = false;
    setConn('connecting');
    var socket = window.io({
      auth: function (cb) { cb({ token: state.token }); },
      reconnectionDelay: 500,
      reconnectionDelayMax: 10000,
    });
    state.socket = socket;

    socket.on('connect', function () {
      state.serverReason = null;
      if (socket.recovered) {
        setConn('recovered');
      } else {
        if (state.connectedOnce) {
          showBanner('Reconnected. Changes made while the connection was down could not be replayed, so the lists may miss some.');
        }
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
        setConn('auth', 'token expired');
        openTokenDialog('The token expired. Paste a fresh one to continue where the board left off.');
        return;
      }
      setConn('offline');
      showBanner('The server ended the connection' + (state.serverReason ? ' (' + state.serverReason + ')' : '') + '.', 'Reconnect', function () {
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
      setConn('auth', err && err.message);
      openTokenDialog('The server refused this token: ' + ((err && err.message) || 'unknown reason') + '.');
    });
    socket.io.on('reconnect_attempt', function (n) {
      setConn('reconnecting', n > 1 ? 'attempt ' + n : '');
    });

    socket.on('notifier.resync', function () {
      showBanner('Some changes made while the board was offline are too old to replay: the lists may be incomplete. Reload the page to start fresh.');
    });
    socket.on('notifier.disconnect', function (info) {
      state.serverReason = (info && info.reason) || null;
    });

    // The seeds' handlers, one per event.
    socket.on('appointments.created', function (appointment, offset) {
      counted(offset);
      if (!appointment) return;
      // 000: setAppointments((prev) => [...prev, appointment])
      state.appointments.push(appointment);
      state.totals.appointments++;
      trim(state.appointments);
      renderAppointment(appointment);
    });
    socket.on('appointments.checkin', function (appointment, offset) {
      counted(offset);
      if (!appointment) return;
      updateAppointmentStatus(appointment);
      // 001: append only if not already listed and its status is Check-in.
      var exists = state.queue.some(function (apt) { return apt.id === appointment.id; });
      if (!exists && appointment.status && appointment.status.name === 'Check-in') {
        state.queue.push(appointment);
        trim(state.queue);
        renderQueued(appointment);
      }
    });
    socket.on('doctors.created', function (doctor, offset) {
      counted(offset);
      if (!doctor) return;
      // 002: setDoctors((prev) => [...prev, data])
      state.doctors.push(doctor);
      state.totals.doctors++;
      trim(state.doctors);
      renderDoctor(doctor);
    });
  }

  function counted(offset) {
    state.events++;
    state.lastEventAt = Date.now();
    if (typeof offset === 'string') state.lastOffset = offset;
    $('event-count').textContent = state.events.toLocaleString();
    $('events').title = state.lastOffset ? 'Last event id ' + state.lastOffset : '';
    tick();
  }

  function trim(list) {
    if (list.length > MAX_ROWS) list.splice(0, list.length - MAX_ROWS);
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

  function statusChip(status) {
    var chip = el('span', 'status', (status && status.name) || 'Unknown');
    if (status && typeof status.color === 'string' && validColor.test(status.color)) {
      chip.style.setProperty('--c', status.color);
    }
    return chip;
  }

  var money = new Intl.NumberFormat('pt-BR', { style: 'currency', currency: 'BRL' });

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
    return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  function localDay(d) {
    var m = d.getMonth() + 1;
    var day = d.getDate();
    return d.getFullYear() + '-' + (m < 10 ? '0' : '') + m + '-' + (day < 10 ? '0' : '') + day;
  }

  // rowIsNew marks a row for the arrival highlight.
  function fresh(row) {
    row.classList.add('is-new');
    row.addEventListener('animationend', function () { row.classList.remove('is-new'); }, { once: true });
    return row;
  }

  // appendRow appends to a list that reads top to bottom, following the newest row
  // when the reader is already at the bottom.
  function appendRow(list, row) {
    var follow = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
    list.appendChild(row);
    while (list.children.length > MAX_ROWS) list.removeChild(list.firstElementChild);
    if (follow) list.scrollTop = list.scrollHeight;
  }

  function appointmentRow(a) {
    var row = el('li', 'row appt');
    row.dataset.id = String(a.id);
    var time = el('div', 'time');
    time.appendChild(el('span', 'time-start', a.startTime || '--:--'));
    time.appendChild(el('span', 'time-end', a.endTime || ''));
    if (typeof a.date === 'string' && a.date.slice(0, 10) !== localDay(new Date())) {
      var d = new Date(a.date.slice(0, 10) + 'T00:00:00');
      if (!isNaN(d)) time.appendChild(el('span', 'time-day', d.toLocaleDateString([], { day: 'numeric', month: 'short' })));
    }
    row.appendChild(time);

    var main = el('div', 'main');
    main.appendChild(el('div', 'name', name(a.patient, a.partial || !a.patient ? 'Appointment #' + a.id : 'Unnamed patient')));
    var proc = procedureOf(a);
    var details = [name(a.doctor, 'No doctor'), proc ? proc.name : null].filter(Boolean).join(' · ');
    main.appendChild(el('div', 'detail', a.doctor || proc ? details : 'Details unavailable'));
    row.appendChild(main);

    var side = el('div', 'side');
    side.appendChild(statusChip(a.status));
    side.appendChild(el('span', 'price', proc ? price(proc.price) : ''));
    row.appendChild(side);
    return row;
  }

  function renderAppointment(a) {
    var list = $('appointments');
    list.insertBefore(fresh(appointmentRow(a)), list.firstChild);
    while (list.children.length > MAX_ROWS) list.removeChild(list.lastElementChild);
    $('appointments-count').textContent = state.totals.appointments.toLocaleString();
    $('appointments-empty').hidden = true;
  }

  // updateAppointmentStatus recolours a listed appointment when it checks in.
  function updateAppointmentStatus(a) {
    var rows = $('appointments').querySelectorAll('li[data-id="' + Number(a.id) + '"] .status');
    Array.prototype.forEach.call(rows, function (chip) {
      chip.replaceWith(statusChip(a.status));
    });
  }

  function renderQueued(a) {
    var row = el('li', 'row queued');
    row.dataset.id = String(a.id);
    row.appendChild(el('span', 'position', state.queue.length));
    var main = el('div', 'main');
    main.appendChild(el('div', 'name', name(a.patient, 'Appointment #' + a.id)));
    var proc = procedureOf(a);
    var parts = [a.startTime, proc ? proc.name : null, name(a.doctor, null)];
    main.appendChild(el('div', 'detail', parts.filter(Boolean).join(' · ')));
    row.appendChild(main);
    var side = el('div', 'side');
    side.appendChild(statusChip(a.status));
    var arrived = Date.parse(a.updatedAt);
    if (isNaN(arrived) || arrived > Date.now() + 60000) arrived = Date.now();
    var wait = el('span', 'wait');
    wait.dataset.since = String(arrived);
    wait.textContent = waited(arrived);
    side.appendChild(wait);
    row.appendChild(side);
    appendRow($('queue'), fresh(row));
    $('queue-count').textContent = state.queue.length.toLocaleString();
    $('queue-empty').hidden = true;
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

  function renderDoctor(d) {
    var row = el('li', 'row doctor');
    row.dataset.id = String(d.id);
    var avatar = el('span', 'avatar', initials(d.name));
    avatar.style.setProperty('--h', String(hue(String(d.name || d.id))));
    row.appendChild(avatar);

    var main = el('div', 'main');
    var head = el('div', 'doctor-head');
    head.appendChild(el('span', 'name', name(d, 'Doctor #' + d.id)));
    if (d.crm) head.appendChild(el('span', 'crm', 'CRM ' + d.crm));
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
    if (!chips.children.length) chips.appendChild(el('li', 'chip chip-none', 'No procedures yet'));
    main.appendChild(chips);
    row.appendChild(main);

    appendRow($('doctors'), fresh(row));
    $('doctors-count').textContent = state.totals.doctors.toLocaleString();
    $('doctors-empty').hidden = true;
  }

  function resetLists() {
    state.appointments = [];
    state.queue = [];
    state.doctors = [];
    state.totals = { appointments: 0, doctors: 0 };
    ['appointments', 'queue', 'doctors'].forEach(function (id) {
      $(id).textContent = '';
      $(id + '-count').textContent = '0';
      $(id + '-empty').hidden = false;
    });
  }

  // ---- clocks ---------------------------------------------------------------------

  function ago(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 2) return 'just now';
    if (s < 60) return s + 's ago';
    var m = Math.floor(s / 60);
    if (m < 60) return m + ' min ago';
    return Math.floor(m / 60) + ' h ago';
  }

  function waited(since) {
    var m = Math.floor(Math.max(0, Date.now() - since) / 60000);
    if (m < 1) return 'just arrived';
    if (m < 60) return 'waiting ' + m + ' min';
    return 'waiting ' + Math.floor(m / 60) + ' h ' + (m % 60) + ' min';
  }

  var ticks = 0;

  function tick() {
    $('event-age').textContent = state.lastEventAt ? 'last ' + ago(Date.now() - state.lastEventAt) : 'none yet';
    if (ticks++ % 10 !== 0) return;
    Array.prototype.forEach.call($('queue').querySelectorAll('.wait'), function (w) {
      w.textContent = waited(Number(w.dataset.since));
    });
  }

  // ---- start ----------------------------------------------------------------------

  function start() {
    var opened = new Date();
    $('today').textContent = opened.toLocaleDateString([], { weekday: 'long', day: 'numeric', month: 'long' }) +
      ' · live since ' + hhmm(opened);

    $('token-form').addEventListener('submit', function (e) {
      e.preventDefault();
      var token = $('token-input').value.replace(/\s+/g, '');
      if (!token) {
        $('token-error').textContent = 'Paste a token first.';
        $('token-error').hidden = false;
        return;
      }
      connect(token);
    });
    $('token-cancel').addEventListener('click', closeTokenDialog);
    $('token-open').addEventListener('click', function () { openTokenDialog(''); });
    $('banner-close').addEventListener('click', hideBanner);
    $('banner-action').addEventListener('click', function () {
      var action = bannerAction;
      hideBanner();
      if (action) action();
    });
    window.setInterval(tick, 1000);

    var token = takeTokenFromURL();
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
