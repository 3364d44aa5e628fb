-- Every read a caller makes is limited to the sellers it may act for; these columns let the
-- access trail and reconciliation runs be limited in SQL like everything else.

-- The seller of the invoice (or the seller asked about) an access concerns; NULL when the call
-- concerned no seller, which only callers of every seller see.
ALTER TABLE access_records ADD COLUMN seller_tax_id TEXT;
UPDATE access_records SET seller_tax_id =
    (SELECT i.seller_tax_id FROM invoices i WHERE i.invoice_number = access_records.invoice_number)
    WHERE invoice_number IS NOT NULL;
CREATE INDEX access_records_seller ON access_records (seller_tax_id, id);

-- The sellers a run compared, one row each (the run's `sellers` JSON, queryable). A run over every
-- seller has none.
CREATE TABLE reconcile_run_sellers (
    run_id         BIGINT NOT NULL,
    seller_tax_id  TEXT   NOT NULL,
    PRIMARY KEY (run_id, seller_tax_id)
);
INSERT INTO reconcile_run_sellers (run_id, seller_tax_id)
    SELECT DISTINCT r.id, j.value FROM reconcile_runs r, json_array_elements_text(r.sellers::json) AS j(value)
    WHERE r.sellers IS NOT NULL;
