-- Queries for upload work and the backlog must not scan every invoice ever issued: rows with
-- nothing to do have next_attempt_at (and, once settled, upload_phase) NULL, so partial indexes
-- hold only the rows in flight. Listing by state (waiting invoices, the reconciler) gets its own.

CREATE INDEX invoices_upload_phase ON invoices (upload_phase) WHERE upload_phase IS NOT NULL;
CREATE INDEX invoices_seller_state_issued ON invoices (seller_tax_id, state, issued_at);
