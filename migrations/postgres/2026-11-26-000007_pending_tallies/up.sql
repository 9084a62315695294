-- Responses stored whose tallies are not yet added to the tally rows. A response is committed with
-- its row here; the writer later adds many at once to the tallies in the transaction that deletes
-- their rows, so that the tally rows plus the responses listed here count every response exactly
-- once. Readers add the listed responses to what they read from `tallies`. No secondary index: the
-- table holds at most a few seconds of responses.
CREATE TABLE pending_tallies (
    response_id TEXT PRIMARY KEY NOT NULL,
    campaign_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
