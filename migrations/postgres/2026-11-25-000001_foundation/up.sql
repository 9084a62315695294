-- Survey definitions: one row per published (survey, version); immutable once written.
CREATE TABLE survey_versions (
    survey_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    definition TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    published_at TIMESTAMP NOT NULL,
    PRIMARY KEY (survey_id, version)
);

-- Agencies and administrative units, with the dates they were valid.
CREATE TABLE agencies (
    id BIGSERIAL PRIMARY KEY,
    code TEXT NOT NULL,
    name_vi TEXT NOT NULL,
    name_en TEXT,
    level TEXT NOT NULL,
    division_type TEXT,
    parent_id BIGINT REFERENCES agencies (id),
    valid_from DATE,
    valid_to DATE,
    search_name TEXT NOT NULL
);
CREATE UNIQUE INDEX agencies_code_valid_from ON agencies (code, COALESCE(valid_from, DATE '0001-01-01'));
CREATE INDEX agencies_parent ON agencies (parent_id, code);
CREATE INDEX agencies_level_code ON agencies (level, code);

-- Successor links across reorganisations (old province -> the province it became part of).
CREATE TABLE agency_successions (
    predecessor_id BIGINT NOT NULL REFERENCES agencies (id),
    successor_id BIGINT NOT NULL REFERENCES agencies (id),
    effective_on DATE NOT NULL,
    PRIMARY KEY (predecessor_id, successor_id)
);
CREATE INDEX agency_successions_successor ON agency_successions (successor_id);

-- API keys: only a SHA-256 of the secret is kept.
CREATE TABLE api_keys (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);

-- The agencies (with their subtrees) a partner or analyst key is limited to.
CREATE TABLE api_key_agencies (
    key_id BIGINT NOT NULL REFERENCES api_keys (id),
    agency_id BIGINT NOT NULL REFERENCES agencies (id),
    PRIMARY KEY (key_id, agency_id)
);
