-- Population counts per agency and weighting cell, uploaded by analysts for post-stratified
-- estimates (`weights=cells`). A campaign's rows are replaced as a whole on each upload.
CREATE TABLE populations (
    campaign_id TEXT NOT NULL REFERENCES campaigns (id),
    agency_id BIGINT NOT NULL REFERENCES agencies (id),
    cell TEXT NOT NULL,
    population BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, agency_id, cell)
);
