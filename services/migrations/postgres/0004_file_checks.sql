-- The version of the parse and render checks that last passed a file with exactly this SM3. A
-- later verification that finds the same digest reuses the verdict instead of parsing and
-- rendering again (unless asked for a deep check); a new version of the checks runs them afresh.
ALTER TABLE archived_files ADD COLUMN checks_passed TEXT;
