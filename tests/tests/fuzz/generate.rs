//! Generated requests from the contract's descriptors, and a codec that sends and receives raw
//! bytes, so any method can be called without its generated client.

use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};
use rand::Rng;
use rand::rngs::StdRng;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::Bytes;

/// How deep generated messages nest (the contract's messages nest a few levels).
const MAX_DEPTH: usize = 5;

/// Strings that reach deeper than random text: well-formed ids, numbers in every spelling, the
/// contract's own token and cursor shapes, and the classics of input handling.
const STRINGS: &[&str] = &[
    "",
    " ",
    " 1 ",
    "6 %",
    "6%",
    "0.13",
    "免税",
    "不征税",
    "100.00",
    "-100.00",
    "0",
    "-0",
    "1e9",
    "NaN",
    "inf",
    "0.0000000000001",
    "99999999999999999999999999999.99",
    "-79228162514264337593543950335",
    "91310000MA1FP00011",
    "91110302MA01NP925M",
    "110101199003071234",
    "3040201010000000000",
    "26312000000000000007",
    "99999999999999999999",
    "e0",
    "e-1",
    "e99999999999999999999",
    "r0",
    "r9223372036854775807",
    "v1.9223372036854775807.26312000000000000007.0000000000000000",
    "o1.-5.x",
    "p1.-9223372036854775808.0.x",
    "a1.1.x",
    "1",
    "-1",
    "9223372036854775807",
    "*信息技术服务*软件维护服务费",
    "' OR 1=1 --",
    "%_\\",
    "\u{0}\u{1}\u{7f}",
    "\u{202e}\u{fffd}",
    "😀",
];

/// A random request of type `descriptor`.
pub fn arbitrary_message(
    rng: &mut StdRng,
    descriptor: &MessageDescriptor,
    depth: usize,
) -> DynamicMessage {
    let mut message = DynamicMessage::new(descriptor.clone());
    for field in descriptor.fields() {
        // Leave about a third of the fields unset; nested messages thin out with depth.
        if rng.random_range(0..3) == 0 || (depth >= MAX_DEPTH && field_is_message(&field)) {
            continue;
        }
        let value = if field.is_list() {
            let count = match rng.random_range(0..10) {
                0 => rng.random_range(100..300),
                1..=3 => 0,
                _ => rng.random_range(1..4),
            };
            Value::List((0..count).map(|_| scalar(rng, &field, depth)).collect())
        } else if field.is_map() {
            continue;
        } else {
            scalar(rng, &field, depth)
        };
        message.set_field(&field, value);
    }
    message
}

fn field_is_message(field: &FieldDescriptor) -> bool {
    matches!(field.kind(), Kind::Message(_))
}

fn scalar(rng: &mut StdRng, field: &FieldDescriptor, depth: usize) -> Value {
    match field.kind() {
        Kind::Bool => Value::Bool(rng.random()),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(*pick(
            rng,
            &[0, 1, -1, 7, 999_999_999, 1_000_000_000, i32::MAX, i32::MIN],
        )),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(*pick(
            rng,
            &[
                0,
                1,
                -1,
                86_400,
                8_200_000_000_000,
                315_576_000_001,
                253_402_300_800,
                -62_135_596_801,
                i64::MAX,
                i64::MIN,
            ],
        )),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(*pick(rng, &[0, 1, 100, 101, 500, u32::MAX])),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(*pick(rng, &[0, 1, u64::MAX])),
        Kind::Float => Value::F32(*pick(rng, &[0.0, -1.0, f32::MAX, f32::NAN])),
        Kind::Double => Value::F64(*pick(rng, &[0.0, -1.0, f64::MAX, f64::NAN])),
        Kind::String => Value::String(text(rng)),
        Kind::Bytes => Value::Bytes(Bytes::from(
            (0..rng.random_range(0..64))
                .map(|_| rng.random::<u8>())
                .collect::<Vec<u8>>(),
        )),
        Kind::Enum(enumeration) => {
            let known: Vec<i32> = enumeration.values().map(|v| v.number()).collect();
            if rng.random_range(0..5) == 0 {
                Value::EnumNumber(*pick(rng, &[-1, 99, i32::MAX]))
            } else {
                Value::EnumNumber(*pick(rng, &known))
            }
        }
        Kind::Message(inner) => Value::Message(arbitrary_message(rng, &inner, depth + 1)),
    }
}

fn text(rng: &mut StdRng) -> String {
    match rng.random_range(0..10) {
        0 => "票".repeat(rng.random_range(200..20_000)),
        1 => (0..rng.random_range(1..40))
            .map(|_| char::from_u32(rng.random_range(0x20..0x3000)).unwrap_or('?'))
            .collect(),
        _ => (*pick(rng, STRINGS)).to_owned(),
    }
}

fn pick<'a, T>(rng: &mut StdRng, from: &'a [T]) -> &'a T {
    &from[rng.random_range(0..from.len())]
}

/// Requests and answers as the bytes on the wire.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        use bytes_buf::BufMut as _;
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        use bytes_buf::Buf as _;
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

/// The buffer traits `EncodeBuf` and `DecodeBuf` implement.
mod bytes_buf {
    pub use prost::bytes::{Buf, BufMut};
}
