-- The reference clinic schema: what the existing NestJS/Prisma app has already created.
-- Tests and `notifier demo` create it; the notifier itself never does on a real database.
-- Prisma style: quoted camelCase columns, timestamp(3) holding UTC.
CREATE TABLE IF NOT EXISTS statuses (
    id    serial PRIMARY KEY,
    name  text NOT NULL,
    color text
);

CREATE TABLE IF NOT EXISTS contacts (
    id    serial PRIMARY KEY,
    phone text,
    email text
);

CREATE TABLE IF NOT EXISTS patients (
    id          serial PRIMARY KEY,
    name        text NOT NULL,
    "contactId" int REFERENCES contacts (id),
    "accountId" int
);

CREATE TABLE IF NOT EXISTS procedures (
    id          serial PRIMARY KEY,
    name        text NOT NULL,
    price       numeric(12, 2),
    "accountId" int
);

CREATE TABLE IF NOT EXISTS doctors (
    id          serial PRIMARY KEY,
    name        text NOT NULL,
    crm         text,
    email       text,
    phone       text,
    "isBusy"    boolean NOT NULL DEFAULT false,
    "accountId" int,
    "createdAt" timestamp(3) NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    "updatedAt" timestamp(3) NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    "deletedAt" timestamp(3)
);

CREATE TABLE IF NOT EXISTS doctor_procedures (
    id            serial PRIMARY KEY,
    "doctorId"    int NOT NULL REFERENCES doctors (id),
    "procedureId" int NOT NULL REFERENCES procedures (id)
);

CREATE TABLE IF NOT EXISTS appointments (
    id          serial PRIMARY KEY,
    date        timestamp(3) NOT NULL,
    "startTime" text NOT NULL,
    "endTime"   text NOT NULL,
    notes       text,
    "doctorId"  int REFERENCES doctors (id),
    "patientId" int REFERENCES patients (id),
    "statusId"  int REFERENCES statuses (id),
    "accountId" int,
    "createdAt" timestamp(3) NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    "updatedAt" timestamp(3) NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    "deletedAt" timestamp(3)
);

CREATE TABLE IF NOT EXISTS appointment_procedures (
    id              serial PRIMARY KEY,
    "appointmentId" int NOT NULL REFERENCES appointments (id),
    "procedureId"   int NOT NULL REFERENCES procedures (id)
);
