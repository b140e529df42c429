-- Seed data for tests and the demo: two accounts, the statuses the seeds name, a few
-- doctors, patients and procedures. Idempotent: it only inserts into empty tables.
INSERT INTO statuses (id, name, color)
SELECT * FROM (VALUES
    (1, 'Agendado', '#ffc107'),
    (2, 'Check-in', '#17a2b8'),
    (3, 'Em atendimento', '#28a745'),
    (4, 'Finalizado', '#6c757d'),
    (5, 'Cancelado', '#dc3545')) AS v(id, name, color)
WHERE NOT EXISTS (SELECT 1 FROM statuses);
-- Move the sequence past the explicit ids above, only if it is behind them.
DO $$
DECLARE
    seq  text := pg_get_serial_sequence('statuses', 'id');
    top  int;
    last bigint;
BEGIN
    SELECT max(id) INTO top FROM statuses;
    EXECUTE format('SELECT last_value FROM %s', seq) INTO last;
    IF top > last THEN
        PERFORM setval(seq, top);
    END IF;
END
$$;

INSERT INTO contacts (phone, email)
SELECT * FROM (VALUES
    ('(81) 99999-9999', 'joao.silva@example.com'),
    ('(81) 98888-7777', 'maria.souza@example.com'),
    ('(11) 97777-6666', 'ana.lima@example.com'),
    (NULL, 'pedro.alves@example.com')) AS v(phone, email)
WHERE NOT EXISTS (SELECT 1 FROM contacts);

INSERT INTO patients (name, "contactId", "accountId")
SELECT * FROM (VALUES
    ('João Silva', 1, 1),
    ('Maria Souza', 2, 1),
    ('Carlos Pereira', NULL::int, 1),
    ('Ana Lima', 3, 2),
    ('Pedro Alves', 4, 2)) AS v(name, contact, account)
WHERE NOT EXISTS (SELECT 1 FROM patients);

INSERT INTO procedures (name, price, "accountId")
SELECT * FROM (VALUES
    ('Ultrassom: Tireoide', 100.00, 1),
    ('Ultrassom: Transfontanela', 110.00, 1),
    ('Raio-X: Tórax', 99.50, 1),
    ('Consulta: Clínico Geral', 250.00, 2),
    ('Eletrocardiograma', 80.25, 2)) AS v(name, price, account)
WHERE NOT EXISTS (SELECT 1 FROM procedures);

INSERT INTO doctors (name, crm, email, phone, "accountId")
SELECT * FROM (VALUES
    ('Dr. Victor', '12345', 'victor@example.com', '(81) 99999-0000', 1),
    ('Dra. Helena', '23456', 'helena@example.com', '(81) 98888-0000', 1),
    ('Dr. Rafael', '34567', 'rafael@example.com', '(11) 97777-0000', 2)) AS v(name, crm, email, phone, account)
WHERE NOT EXISTS (SELECT 1 FROM doctors);

INSERT INTO doctor_procedures ("doctorId", "procedureId")
SELECT * FROM (VALUES (1, 1), (1, 2), (2, 3), (3, 4), (3, 5)) AS v(d, p)
WHERE NOT EXISTS (SELECT 1 FROM doctor_procedures);
