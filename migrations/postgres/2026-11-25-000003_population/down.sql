DROP TABLE populations;
