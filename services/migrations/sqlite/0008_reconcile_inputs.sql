-- SM3 of the content exactly as it is sent to the platform (its canonical JSON), which the
-- platform lists for each invoice. Kept at issue so that reconciliation compares an invoice
-- without reading and re-serialising its content. NULL for invoices issued before this column
-- existed: reconciliation computes theirs from the content.
ALTER TABLE invoices ADD COLUMN platform_sm3 TEXT;

-- Requests of ours that make the platform issue an invoice on its own (a red-letter confirmation
-- the buyer answers on the platform). An invoice the platform lists under one of these request ids
-- and we do not hold is ours: reconciliation adopts it. Any other invoice only the platform holds
-- is alerted.
CREATE TABLE platform_requests (
    seller_tax_id TEXT NOT NULL,
    request_id    TEXT NOT NULL,
    -- What was asked (e.g. red_letter)
    kind          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (seller_tax_id, request_id)
);
