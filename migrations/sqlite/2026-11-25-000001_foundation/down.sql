DROP TABLE api_key_agencies;
DROP TABLE api_keys;
DROP TABLE agency_successions;
DROP TABLE agencies;
DROP TABLE survey_versions;
