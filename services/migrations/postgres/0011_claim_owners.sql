-- Who holds a claim on upload or archive work. Claiming pushes the due time (next_attempt_at,
-- archive_due_at) forward by a lease and now also names the instance that claimed; writing the
-- outcome clears the name. At start an instance makes the claims under its own name due at once:
-- their holder was itself, and it is gone. Claims of other instances still wait out their lease.
-- No index: the take-back reads only rows whose due time lies ahead, through the partial
-- indexes on the due times, which hold only the rows in flight.

ALTER TABLE invoices ADD COLUMN upload_claimed_by TEXT;
ALTER TABLE invoices ADD COLUMN archive_claimed_by TEXT;
