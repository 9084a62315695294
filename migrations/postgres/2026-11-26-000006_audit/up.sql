-- Admin actions: who (the key, or the command line when NULL), what, on what, when.
CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMP NOT NULL,
    key_id BIGINT REFERENCES api_keys (id),
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    details TEXT NOT NULL
);
CREATE INDEX audit_log_action ON audit_log (action, id);
