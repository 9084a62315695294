//! Table definitions shared by both backends. Column types are the portable subset: the
//! migrations in `migrations/sqlite` and `migrations/postgres` must produce these columns.

diesel::table! {
    survey_versions (survey_id, version) {
        survey_id -> Text,
        version -> Integer,
        definition -> Text,
        content_hash -> Text,
        published_at -> Timestamp,
    }
}

diesel::table! {
    agencies (id) {
        id -> BigInt,
        code -> Text,
        name_vi -> Text,
        name_en -> Nullable<Text>,
        level -> Text,
        division_type -> Nullable<Text>,
        parent_id -> Nullable<BigInt>,
        valid_from -> Nullable<Date>,
        valid_to -> Nullable<Date>,
        search_name -> Text,
    }
}

diesel::table! {
    agency_successions (predecessor_id, successor_id) {
        predecessor_id -> BigInt,
        successor_id -> BigInt,
        effective_on -> Date,
    }
}

diesel::table! {
    api_keys (id) {
        id -> BigInt,
        name -> Text,
        role -> Text,
        secret_hash -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    api_key_agencies (key_id, agency_id) {
        key_id -> BigInt,
        agency_id -> BigInt,
    }
}

diesel::joinable!(api_key_agencies -> api_keys (key_id));
diesel::joinable!(api_key_agencies -> agencies (agency_id));

diesel::allow_tables_to_appear_in_same_query!(
    survey_versions,
    agencies,
    agency_successions,
    api_keys,
    api_key_agencies,
);
