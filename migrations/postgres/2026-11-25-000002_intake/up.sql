-- Secrets the server generates once and shares between instances (keyed hashes, session signing).
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- A campaign is one survey round on one published survey version.
CREATE TABLE campaigns (
    id TEXT PRIMARY KEY NOT NULL,
    survey_id TEXT NOT NULL,
    survey_version INTEGER NOT NULL,
    title TEXT NOT NULL,
    opens_at TIMESTAMP NOT NULL,
    closes_at TIMESTAMP NOT NULL,
    channels TEXT NOT NULL,
    min_n INTEGER NOT NULL,
    results_public BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    FOREIGN KEY (survey_id, survey_version) REFERENCES survey_versions (survey_id, version)
);

-- The agencies a campaign names; each brings its whole subtree.
CREATE TABLE campaign_agencies (
    campaign_id TEXT NOT NULL REFERENCES campaigns (id),
    agency_id BIGINT NOT NULL REFERENCES agencies (id),
    PRIMARY KEY (campaign_id, agency_id)
);

-- One row per response; the answers are one compact JSON array aligned with the definition's
-- questions. No IP address, user agent or invitation is stored; key_id and channel are provenance.
CREATE TABLE responses (
    id TEXT PRIMARY KEY NOT NULL,
    campaign_id TEXT NOT NULL REFERENCES campaigns (id),
    agency_id BIGINT NOT NULL REFERENCES agencies (id),
    respondent_type TEXT NOT NULL,
    language TEXT NOT NULL,
    channel TEXT NOT NULL,
    key_id BIGINT,
    service TEXT,
    dossier_hash TEXT,
    answers TEXT NOT NULL,
    completed_at TIMESTAMP,
    received_at TIMESTAMP NOT NULL
);
CREATE INDEX responses_campaign ON responses (campaign_id, id);
CREATE UNIQUE INDEX responses_dossier ON responses (campaign_id, agency_id, dossier_hash) WHERE dossier_hash IS NOT NULL;

-- Results of requests made with an idempotency key, replayed on retry.
CREATE TABLE idempotency_keys (
    scope TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (scope, idempotency_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Sufficient statistics per (campaign, agency and each of its ancestors, respondent type, cell):
-- counts per answer value and, per measure, n, sum and sum of squares of respondent scores,
-- packed in `data` by the layout of the campaign's definition.
CREATE TABLE tallies (
    campaign_id TEXT NOT NULL REFERENCES campaigns (id),
    agency_id BIGINT NOT NULL REFERENCES agencies (id),
    respondent_type TEXT NOT NULL,
    cell TEXT NOT NULL,
    respondents BIGINT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (campaign_id, agency_id, respondent_type, cell)
);
