-- notifier 0001 down: removes everything 0001 installed. The application's tables and
-- rows are untouched; only the three notifier_* triggers are dropped from them.
DROP TRIGGER IF EXISTS notifier_appointments_created ON appointments;
DROP TRIGGER IF EXISTS notifier_appointments_checkin ON appointments;
DROP TRIGGER IF EXISTS notifier_doctors_created ON doctors;
DROP FUNCTION IF EXISTS notifier.appointment_created();
DROP FUNCTION IF EXISTS notifier.appointment_checkin();
DROP FUNCTION IF EXISTS notifier.doctor_created();
DROP FUNCTION IF EXISTS notifier.append(text, bigint, bigint);
DROP FUNCTION IF EXISTS notifier.payload(bigint, text, bigint, bigint);
DROP TABLE IF EXISTS notifier.log_state;
DROP TABLE IF EXISTS notifier.events;
