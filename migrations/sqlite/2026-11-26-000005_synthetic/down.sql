ALTER TABLE campaigns DROP COLUMN synthetic;
