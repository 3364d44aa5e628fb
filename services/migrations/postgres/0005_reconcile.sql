-- Re-uploads the reconciler has made for an invoice it found missing on the platform or stuck;
-- bounded, after which the drift is alerted instead of repaired again.
ALTER TABLE invoices ADD COLUMN reconcile_attempts INTEGER NOT NULL DEFAULT 0;
