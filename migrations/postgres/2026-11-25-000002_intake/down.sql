DROP TABLE tallies;
DROP TABLE idempotency_keys;
DROP TABLE responses;
DROP TABLE campaign_agencies;
DROP TABLE campaigns;
DROP TABLE server_secrets;
