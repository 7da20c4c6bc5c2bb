//! Every stored record type decoded from arbitrary bytes: never a panic, and
//! whatever decodes encodes to bytes that decode to the same record. (Not
//! to the same bytes: bincode's varints accept non-minimal forms — the
//! first crash this target found, kept as the codec unit test
//! `fuzz_codec_records_non_minimal_varints_decode_to_the_minimal_value`.)
#![no_main]

use exsec::store::codec;
use exsec::store::records::{
    AppRecord, CleanupRecord, DataKeyRecord, DeployRecord, IdempotencyRecord, RedeployRecord,
    SecretRecord, SecretVersionRecord, StoredAuditEvent, TenantRecord, TokenRecord,
};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    let Ok(value) = codec::decode::<T>(bytes) else {
        return;
    };
    let encoded = codec::encode(&value).expect("a decoded record encodes");
    assert!(encoded.len() <= bytes.len(), "the encoding grew");
    assert_eq!(codec::decode::<T>(&encoded).expect("re-decodes"), value);
}

fuzz_target!(|bytes: &[u8]| {
    round_trip::<TenantRecord>(bytes);
    round_trip::<AppRecord>(bytes);
    round_trip::<SecretRecord>(bytes);
    round_trip::<TokenRecord>(bytes);
    round_trip::<StoredAuditEvent>(bytes);
    round_trip::<DeployRecord>(bytes);
    round_trip::<IdempotencyRecord>(bytes);
    round_trip::<SecretVersionRecord>(bytes);
    round_trip::<DataKeyRecord>(bytes);
    round_trip::<CleanupRecord>(bytes);
    round_trip::<RedeployRecord>(bytes);
});
