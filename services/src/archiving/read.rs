//! Reading one archived file for a person: the recorded file, fetched and checked against its
//! recorded size and SM3 before any byte is handed out. Shared by `AuditService.GetArchivedFile`
//! and `fapiao archive get`.

use crate::store::{FileRecord, Store};
use fapiao_archive::Format;
use fapiao_archive::check::sm3_hex;
use fapiao_archive::store::Archive;
use fapiao_invoice::number::InvoiceNumber;

/// Why a file was not handed out.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// No such file is recorded (the invoice is unknown or not archived yet).
    #[error("no archived {format} of invoice {number}")]
    NotRecorded {
        number: InvoiceNumber,
        format: Format,
    },
    /// The file is recorded but its object is gone.
    #[error("the archived {format} of {number} is recorded under {key} but missing")]
    Missing {
        number: InvoiceNumber,
        format: Format,
        key: String,
    },
    /// The object's bytes are not the bytes that were recorded.
    #[error("the archived {format} of {number} under {key} does not match its recorded SM3 digest")]
    DigestMismatch {
        number: InvoiceNumber,
        format: Format,
        key: String,
    },
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// The recorded `format` file of invoice `number` and its bytes, which match the record. A missing
/// or changed object is logged as an alarm: archived files are evidence.
pub async fn read_checked(
    store: &Store,
    archive: &Archive,
    number: &InvoiceNumber,
    format: Format,
) -> Result<(FileRecord, bytes::Bytes), ReadError> {
    let record = store
        .archived_files(&[*number])
        .await?
        .remove(number)
        .and_then(|files| files.into_iter().find(|f| f.format == format))
        .ok_or(ReadError::NotRecorded {
            number: *number,
            format,
        })?;
    let key = record.object_key.clone();
    let Some(bytes) = archive.get(&key).await.map_err(anyhow::Error::new)? else {
        tracing::error!(invoice_number = %number, %key, "ALARM: a recorded archive object is missing");
        return Err(ReadError::Missing {
            number: *number,
            format,
            key,
        });
    };
    if bytes.len() as u64 != record.size_bytes || sm3_hex(&bytes) != record.sm3_hex {
        tracing::error!(invoice_number = %number, %key,
            "ALARM: an archived object no longer matches its recorded digest");
        return Err(ReadError::DigestMismatch {
            number: *number,
            format,
            key,
        });
    }
    Ok((record, bytes))
}
