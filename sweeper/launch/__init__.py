"""Run a study on Ray Tune: one Tune trial per trial config, written to the database by a driver callback."""
