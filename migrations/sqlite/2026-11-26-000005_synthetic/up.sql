-- Campaigns filled with synthetic responses (`sipas demo`) are marked, so that every page, report
-- and export can say that their figures are not real.
ALTER TABLE campaigns ADD COLUMN synthetic BOOLEAN NOT NULL DEFAULT FALSE;
