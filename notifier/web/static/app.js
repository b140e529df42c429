// The clinic live board: three panels fed by the notifier's Socket.IO events, with the
// seeds' handler rules (000 appointments.created, 001 appointments.checkin, 002
// doctors.created) and the same rule for the rest: a row is known by its id, an event
// replaces it (updated, status.changed, serving, finished; doctors.updated, busy) or
// removes it (deleted), and the check-in queue holds only patients whose status is
// Check-in. Each row remembers the offset (log id) of the last event applied to it, so
// an older event, replayed or late, never brings back an older state. No framework, no
// build step. The access token lives in this closure only: never in storage, cookies
// or the URL (it is removed from the address bar as soon as it is read).
(function () {
  'use strict';

  var MAX_ROWS = 300; // rows kept per panel; older ones scroll out of memory
  var MAX_VERSIONS = 20000; // rows whose last offset is remembered, per table
  var RECOVERED_FOR = 8000; // ms the "Recovered" state shows before "Live"
  var CHECKIN = 'Check-in'; // the status of the patients in the queue (seed 001)

  var APPOINTMENT_EVENTS = [
    'appointments.created', 'appointments.updated', 'appointments.status.changed',
    'appointments.checkin', 'appointments.serving', 'appointments.finished', 'appointments.deleted',
  ];
  var DOCTOR_EVENTS = ['doctors.created', 'doctors.updated', 'doctors.busy', 'doctors.deleted'];

  var $ = function (id) { return document.getElementById(id); };

  var state = {
    token: null,
    account: null, // from the token's claims, for display and to keep lists per account
    socket: null,
    connectedOnce: false,
    serverReason: null, // from notifier.disconnect, explains the disconnect that follows
    appointments: [], // oldest first; the panel shows the newest first
    queue: [], // in order of arrival
    doctors: [], // in order of arrival
    totals: { appointments: 0, doctors: 0 }, // rows known and not deleted, trimmed ones included
    seen: { appointments: new Map(), doctors: new Map() }, // id -> {at: offset, live: counted}
    statuses: new Map(), // id -> {id, name, color, at}: the newest the page has seen
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

    // The seeds' handlers, and the same rules for the other events.
    APPOINTMENT_EVENTS.forEach(function (event) {
      socket.on(event, function (appointment, offset) {
        counted(offset);
        if (appointment && appointment.id !== undefined && appointment.id !== null) onAppointment(event, appointment, offset);
      });
    });
    DOCTOR_EVENTS.forEach(function (event) {
      socket.on(event, function (doctor, offset) {
        counted(offset);
        if (doctor && doctor.id !== undefined && doctor.id !== null) onDoctor(event, doctor, offset);
      });
    });
  }

  // ---- rows by id, newest event wins ----------------------------------------------

  // position is an event's offset (its log id, a decimal string below 2^53) as a
  // number; NaN when there is none.
  function position(offset) {
    return typeof offset === 'string' && /^[0-9]{1,16}$/.test(offset) ? Number(offset) : NaN;
  }

  // stale reports whether what the page has for a row comes from an event after the
  // one at n. Without both offsets nothing is stale.
  function stale(v, n) {
    return !!v && !isNaN(v.at) && !isNaN(n) && n <= v.at;
  }

  // remember records the event at n as the row's last, forgetting the longest-unchanged
  // rows past MAX_VERSIONS.
  function remember(seen, id, n, live) {
    seen.delete(id);
    seen.set(id, { at: n, live: live });
    if (seen.size > MAX_VERSIONS) seen.delete(seen.keys().next().value);
  }

  function indexById(list, id) {
    for (var i = 0; i < list.length; i++) {
      if (String(list[i].id) === id) return i;
    }
    return -1;
  }

  // rowOf finds a panel's row by id without building a selector from event data.
  function rowOf(listID, id) {
    var rows = $(listID).children;
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].dataset.id === id) return rows[i];
    }
    return null;
  }

  // enriched tells a whole payload from a partial one ({id, accountId} only: the row
  // could not be read), which must not replace what the page shows.
  function enriched(obj, key) {
    return Object.prototype.hasOwnProperty.call(obj, key);
  }

  function onAppointment(event, a, offset) {
    var id = String(a.id);
    var n = position(offset);
    var v = state.seen.appointments.get(id);
    if (stale(v, n)) return;
    var live = !!(v && v.live);
    var whole = enriched(a, 'status');
    if (whole) noteStatus(a.status, n);
    if (event === 'appointments.deleted' || (whole && a.deletedAt)) {
      removeAppointment(id);
      removeQueued(id);
      if (live) state.totals.appointments--;
      live = false;
    } else if (event === 'appointments.created') {
      // 000: setAppointments((prev) => [...prev, appointment]), once per id.
      if (!replaceAppointment(id, a)) addAppointment(a);
      if (!live) state.totals.appointments++;
      live = true;
    } else if (whole) {
      replaceAppointment(id, a);
      applyToQueue(event, id, a);
    }
    remember(state.seen.appointments, id, n, live);
    showCount('appointments', state.totals.appointments);
  }

  // applyToQueue applies an appointment's event to the check-in queue: 001's rule adds a
  // patient whose status is Check-in once; any other status, or being served or
  // finished, takes them out.
  function applyToQueue(event, id, a) {
    var checkedIn = !!(a.status && a.status.name === CHECKIN);
    var i = indexById(state.queue, id);
    if (event === 'appointments.checkin' && i < 0) {
      if (checkedIn) {
        state.queue.push(a);
        trim(state.queue);
        renderQueued(a);
      }
      return;
    }
    if (i < 0) return;
    if (!checkedIn || event === 'appointments.serving' || event === 'appointments.finished') {
      removeQueued(id);
    } else {
      state.queue[i] = a;
      replaceQueued(id, a);
    }
  }

  function onDoctor(event, d, offset) {
    var id = String(d.id);
    var n = position(offset);
    var v = state.seen.doctors.get(id);
    if (stale(v, n)) return;
    var live = !!(v && v.live);
    var whole = enriched(d, 'doctorProcedures');
    if (event === 'doctors.deleted' || (whole && d.deletedAt)) {
      removeDoctor(id);
      if (live) state.totals.doctors--;
      live = false;
    } else if (whole || event === 'doctors.created') {
      // 002: setDoctors((prev) => [...prev, data]); an update of a doctor the board
      // has not listed yet lists it too, so that a busy doctor shows wherever they joined.
      if (!replaceDoctor(id, d)) addDoctor(d);
      if (!live) state.totals.doctors++;
      live = true;
    }
    remember(state.seen.doctors, id, n, live);
    showCount('doctors', state.totals.doctors);
  }

  // noteStatus keeps the newest name and colour of each status, and repaints every
  // chip of a status that changed: statuses are shared, so an event about one row tells
  // the colour of all rows in that status.
  function noteStatus(status, n) {
    if (!status || status.id === undefined || status.id === null) return;
    var id = String(status.id);
    var known = state.statuses.get(id);
    if (stale(known, n)) return;
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

  // statusChip shows a status with the newest name and colour the page knows for it.
  function statusChip(status) {
    var known = status && status.id !== undefined && status.id !== null ? state.statuses.get(String(status.id)) : null;
    var s = known || status;
    var chip = el('span', 'status', (s && s.name) || 'Unknown');
    if (status && status.id !== undefined && status.id !== null) chip.dataset.status = String(status.id);
    if (s && typeof s.color === 'string' && validColor.test(s.color)) {
      chip.style.setProperty('--c', s.color);
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

  function addAppointment(a) {
    state.appointments.push(a);
    trim(state.appointments);
    var list = $('appointments');
    list.insertBefore(fresh(appointmentRow(a)), list.firstChild);
    while (list.children.length > MAX_ROWS) list.removeChild(list.lastElementChild);
  }

  // replaceAppointment puts a listed appointment's new state in its place; false when
  // it is not listed.
  function replaceAppointment(id, a) {
    var i = indexById(state.appointments, id);
    if (i < 0) return false;
    state.appointments[i] = a;
    var row = rowOf('appointments', id);
    if (row) row.replaceWith(fresh(appointmentRow(a)));
    return true;
  }

  function removeAppointment(id) {
    var i = indexById(state.appointments, id);
    if (i >= 0) state.appointments.splice(i, 1);
    var row = rowOf('appointments', id);
    if (row) row.remove();
  }

  // queuedRow is a queue row; since is when the patient checked in (ms).
  function queuedRow(a, place, since) {
    var row = el('li', 'row queued');
    row.dataset.id = String(a.id);
    row.appendChild(el('span', 'position', place));
    var main = el('div', 'main');
    main.appendChild(el('div', 'name', name(a.patient, 'Appointment #' + a.id)));
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

  function renderQueued(a) {
    var arrived = Date.parse(a.updatedAt);
    if (isNaN(arrived) || arrived > Date.now() + 60000) arrived = Date.now();
    appendRow($('queue'), fresh(queuedRow(a, state.queue.length, arrived)));
    renumberQueue();
  }

  // replaceQueued shows a queued patient's new details, keeping their place and wait.
  function replaceQueued(id, a) {
    var row = rowOf('queue', id);
    if (!row) return;
    var wait = row.querySelector('.wait');
    var since = wait ? Number(wait.dataset.since) : Date.now();
    row.replaceWith(fresh(queuedRow(a, 0, since)));
    renumberQueue();
  }

  function removeQueued(id) {
    var i = indexById(state.queue, id);
    if (i >= 0) state.queue.splice(i, 1);
    var row = rowOf('queue', id);
    if (row) row.remove();
    renumberQueue();
  }

  function renumberQueue() {
    Array.prototype.forEach.call($('queue').children, function (row, i) {
      var place = row.querySelector('.position');
      if (place) place.textContent = String(i + 1);
    });
    showCount('queue', state.queue.length);
  }

  // showCount sets a panel's count and shows its empty state when it lists nothing.
  function showCount(panel, n) {
    $(panel + '-count').textContent = Math.max(0, n).toLocaleString();
    $(panel + '-empty').hidden = $(panel).children.length > 0;
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
    head.appendChild(el('span', 'name', name(d, 'Doctor #' + d.id)));
    if (d.crm) head.appendChild(el('span', 'crm', 'CRM ' + d.crm));
    if (d.isBusy === true) head.appendChild(el('span', 'busy', 'Busy'));
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
    return row;
  }

  function addDoctor(d) {
    state.doctors.push(d);
    trim(state.doctors);
    appendRow($('doctors'), fresh(doctorRow(d)));
  }

  // replaceDoctor puts a listed doctor's new state in its place; false when the
  // doctor is not listed.
  function replaceDoctor(id, d) {
    var i = indexById(state.doctors, id);
    if (i < 0) return false;
    state.doctors[i] = d;
    var row = rowOf('doctors', id);
    if (row) row.replaceWith(fresh(doctorRow(d)));
    return true;
  }

  function removeDoctor(id) {
    var i = indexById(state.doctors, id);
    if (i >= 0) state.doctors.splice(i, 1);
    var row = rowOf('doctors', id);
    if (row) row.remove();
  }

  function resetLists() {
    state.appointments = [];
    state.queue = [];
    state.doctors = [];
    state.totals = { appointments: 0, doctors: 0 };
    state.seen = { appointments: new Map(), doctors: new Map() };
    state.statuses = new Map();
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
