-- Reminder schedule and mail wording per campaign, as JSON:
-- {"reminders": [3, 7], "subject": {"vi": …, "en": …}, "greeting": {"vi": …, "en": …}}.
ALTER TABLE campaigns ADD COLUMN mail_settings TEXT NOT NULL DEFAULT '{}';

-- One personal invitation. The one-time token is never stored: it is derived from the id with a
-- server secret, and only its hash is kept to find the invitation from a link. Nothing here or in
-- responses links an invitation to the answers it produced: `used` records only that it was used.
-- The address (and dossier) are erased once the campaign has been closed for the retention period.
CREATE TABLE invitations (
    id TEXT PRIMARY KEY NOT NULL,
    campaign_id TEXT NOT NULL REFERENCES campaigns (id),
    agency_id BIGINT NOT NULL REFERENCES agencies (id),
    email TEXT,
    email_hash TEXT NOT NULL,
    language TEXT NOT NULL,
    dossier TEXT,
    token_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    used BOOLEAN NOT NULL DEFAULT FALSE,
    opted_out BOOLEAN NOT NULL DEFAULT FALSE,
    reminders_sent INTEGER NOT NULL DEFAULT 0,
    failure TEXT,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP,
    purged BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE UNIQUE INDEX invitations_email ON invitations (campaign_id, email_hash);
CREATE UNIQUE INDEX invitations_token ON invitations (token_hash);

-- Messages waiting to be sent, written in the same transaction as what caused them. A worker
-- claims a message by setting claimed_until (a lease); a crash after sending and before marking
-- sends it once more when the lease runs out, never loses it.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY NOT NULL,
    invitation_id TEXT NOT NULL REFERENCES invitations (id),
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    claimed_until TIMESTAMP,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
