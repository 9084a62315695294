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

diesel::joinable!(campaign_agencies -> campaigns (campaign_id));
diesel::joinable!(campaign_agencies -> agencies (agency_id));
diesel::joinable!(responses -> agencies (agency_id));

diesel::allow_tables_to_appear_in_same_query!(
    audit_log,
    survey_versions,
    agencies,
    agency_successions,
    api_keys,
    api_key_agencies,
    server_secrets,
    campaigns,
    campaign_agencies,
    responses,
    idempotency_keys,
    tallies,
    pending_tallies,
    populations,
    invitations,
    outbox,
);

diesel::table! {
    server_secrets (name) {
        name -> Text,
        value -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    campaigns (id) {
        id -> Text,
        survey_id -> Text,
        survey_version -> Integer,
        title -> Text,
        opens_at -> Timestamp,
        closes_at -> Timestamp,
        channels -> Text,
        min_n -> Integer,
        results_public -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        mail_settings -> Text,
        synthetic -> Bool,
    }
}

diesel::table! {
    campaign_agencies (campaign_id, agency_id) {
        campaign_id -> Text,
        agency_id -> BigInt,
    }
}

diesel::table! {
    responses (id) {
        id -> Text,
        campaign_id -> Text,
        agency_id -> BigInt,
        respondent_type -> Text,
        language -> Text,
        channel -> Text,
        key_id -> Nullable<BigInt>,
        service -> Nullable<Text>,
        dossier_hash -> Nullable<Text>,
        answers -> Text,
        completed_at -> Nullable<Timestamp>,
        received_at -> Timestamp,
    }
}

diesel::table! {
    idempotency_keys (scope, idempotency_key) {
        scope -> Text,
        idempotency_key -> Text,
        request_hash -> Text,
        status -> Integer,
        body -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    tallies (campaign_id, agency_id, respondent_type, cell) {
        campaign_id -> Text,
        agency_id -> BigInt,
        respondent_type -> Text,
        cell -> Text,
        respondents -> BigInt,
        data -> Binary,
    }
}

diesel::table! {
    pending_tallies (response_id) {
        response_id -> Text,
        campaign_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    populations (campaign_id, agency_id, cell) {
        campaign_id -> Text,
        agency_id -> BigInt,
        cell -> Text,
        population -> BigInt,
    }
}

diesel::table! {
    invitations (id) {
        id -> Text,
        campaign_id -> Text,
        agency_id -> BigInt,
        email -> Nullable<Text>,
        email_hash -> Text,
        language -> Text,
        dossier -> Nullable<Text>,
        token_hash -> Text,
        status -> Text,
        used -> Bool,
        opted_out -> Bool,
        reminders_sent -> Integer,
        failure -> Nullable<Text>,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
        purged -> Bool,
    }
}

diesel::table! {
    outbox (id) {
        id -> Text,
        invitation_id -> Text,
        kind -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        claimed_until -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(outbox -> invitations (invitation_id));

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        at -> Timestamp,
        key_id -> Nullable<BigInt>,
        action -> Text,
        target -> Text,
        details -> Text,
    }
}
