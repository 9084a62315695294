DROP TABLE pending_tallies;
