DROP TABLE outbox;
DROP TABLE invitations;
ALTER TABLE campaigns DROP COLUMN mail_settings;
