-- Avon's messages (seed 003), as its API stores them: the table triggers/examples/
-- messages.yaml publishes. Tests create it beside the reference clinic schema; the
-- notifier itself never does on a real database. Prisma style, as schema.sql.
CREATE TABLE IF NOT EXISTS messages (
    id          serial PRIMARY KEY,
    "threadId"  int,
    body        text,
    "authorId"  int,
    "accountId" int,
    "createdAt" timestamp(3) NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    "updatedAt" timestamp(3) NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    "deletedAt" timestamp(3)
);
