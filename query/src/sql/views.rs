//! The tables operators query: views over the raw per-topic history tables.
//!
//! Raw tables live in the `raw` schema, one per topic with dots as underscores
//! (`raw.telemetry_readings`), with every Avro field plus `_partition`, `_offset`,
//! `_log_timestamp` and `date`. The views below give them names and columns that read naturally
//! (lower-case enum values, nested records flattened, the latest state where that is the
//! question).

use automata_schemas::catalog;

/// One operator-facing table.
pub struct View {
    /// Table name in SQL.
    pub name: &'static str,
    /// One line for `metal-automata sql --tables` and the README.
    pub about: &'static str,
    /// The topics it reads.
    pub topics: &'static [&'static str],
    /// Its time column, for `export --since` (none: the table holds latest state).
    pub time_column: Option<&'static str>,
    /// Its definition.
    pub sql: &'static str,
}

/// The raw table name of a topic, inside the `raw` schema.
pub fn raw_name(topic: &str) -> String {
    topic.replace('.', "_")
}

/// Every operator-facing table.
pub const VIEWS: &[View] = &[
    View {
        name: "servers",
        about: "Latest state of every server: identity, power, health, firmware, last contact",
        topics: &[catalog::SERVERS_STATE],
        time_column: None,
        sql: "SELECT server_id, serial, uuid, hostname, bmc_address, manufacturer, model, \
              power_state, lower(health) AS health, firmware['bios'] AS bios_version, firmware, \
              last_seen, last_inventory_at, last_telemetry_at, component_count, readings_count, \
              latest_readings, labels \
              FROM (SELECT *, row_number() OVER (PARTITION BY server_id \
                    ORDER BY _log_timestamp DESC, _offset DESC) AS _rn FROM raw.servers_state) \
              WHERE _rn = 1",
    },
    View {
        name: "telemetry",
        about: "Every sensor reading: power, temperature, fan, voltage, current, energy, utilization",
        topics: &[catalog::TELEMETRY_READINGS],
        time_column: Some("timestamp"),
        sql: "SELECT \"timestamp\", server_id, sensor_id AS sensor, name, kind, \
              value, unit, component_id, source FROM raw.telemetry_readings",
    },
    View {
        name: "inventory",
        about: "Every inventory snapshot: system identity, BIOS and component count per source",
        topics: &[catalog::INVENTORY_SNAPSHOTS],
        time_column: Some("collected_at"),
        sql: "SELECT collected_at, server_id, lower(source) AS source, \
              get_field(system, 'manufacturer') AS manufacturer, \
              get_field(system, 'product') AS product, get_field(system, 'serial') AS serial, \
              get_field(system, 'uuid') AS uuid, get_field(system, 'sku') AS sku, \
              get_field(bios, 'vendor') AS bios_vendor, get_field(bios, 'version') AS bios_version, \
              get_field(bios, 'release_date') AS bios_release_date, \
              cardinality(components) AS component_count, errors \
              FROM raw.inventory_snapshots",
    },
    View {
        name: "components",
        about: "Components of every server, from its latest inventory per source",
        topics: &[catalog::INVENTORY_SNAPSHOTS],
        time_column: None,
        sql: "SELECT server_id, src AS source, collected_at, \
              get_field(c, 'component_id') AS component_id, lower(get_field(c, 'kind')) AS kind, \
              get_field(c, 'name') AS name, get_field(c, 'manufacturer') AS manufacturer, \
              get_field(c, 'model') AS model, get_field(c, 'serial') AS serial, \
              get_field(c, 'part_number') AS part_number, \
              get_field(c, 'firmware_version') AS firmware_version, \
              get_field(c, 'location') AS location, get_field(c, 'properties') AS properties \
              FROM (SELECT s.server_id, lower(s.source) AS src, s.collected_at, \
                    unnest(s.components) AS c \
                    FROM (SELECT *, row_number() OVER (PARTITION BY server_id, source \
                          ORDER BY collected_at DESC, _offset DESC) AS _rn \
                          FROM raw.inventory_snapshots) s WHERE s._rn = 1) u",
    },
    View {
        name: "firmware",
        about: "Firmware versions over time: one row per component (and BIOS) per inventory snapshot",
        topics: &[catalog::INVENTORY_SNAPSHOTS],
        time_column: Some("observed_at"),
        sql: "SELECT observed_at, server_id, src AS source, \
              get_field(c, 'component_id') AS component_id, \
              lower(get_field(c, 'kind')) AS kind, get_field(c, 'name') AS name, \
              get_field(c, 'manufacturer') AS manufacturer, get_field(c, 'model') AS model, \
              get_field(c, 'firmware_version') AS version \
              FROM (SELECT i.collected_at AS observed_at, i.server_id, lower(i.source) AS src, \
                    unnest(i.components) AS c FROM raw.inventory_snapshots i) u \
              WHERE get_field(c, 'firmware_version') IS NOT NULL \
              UNION ALL \
              SELECT collected_at, server_id, lower(source), 'bios', 'bios', 'BIOS', \
              get_field(bios, 'vendor'), CAST(NULL AS VARCHAR), get_field(bios, 'version') \
              FROM raw.inventory_snapshots WHERE get_field(bios, 'version') IS NOT NULL",
    },
    View {
        name: "component_changes",
        about: "Components added, removed or changed (firmware, serial) as inventory saw it",
        topics: &[catalog::INVENTORY_CHANGES],
        time_column: Some("detected_at"),
        sql: "SELECT detected_at, server_id, component_id, lower(kind) AS kind, \
              lower(change) AS change, \"before\", \"after\" FROM raw.inventory_changes",
    },
    View {
        name: "health_events",
        about: "Every health transition of a server or component, with its classification",
        topics: &[catalog::HEALTH_EVENTS],
        time_column: Some("raised_at"),
        sql: "SELECT raised_at, server_id, component_id, lower(previous) AS previous, \
              lower(health) AS health, classification, message, evidence \
              FROM raw.health_events",
    },
    View {
        name: "health",
        about: "Current health of every server and component",
        topics: &[catalog::HEALTH_STATE],
        time_column: None,
        sql: "SELECT server_id, component_id, lower(health) AS health, classification, message, \
              since, evidence \
              FROM (SELECT *, row_number() OVER (PARTITION BY server_id, component_id \
                    ORDER BY _log_timestamp DESC, _offset DESC) AS _rn FROM raw.health_state) \
              WHERE _rn = 1",
    },
    View {
        name: "commands",
        about: "Commands sent to servers, who asked and authorised them, and how they ended",
        topics: &[catalog::COMMANDS_REQUESTS, catalog::COMMANDS_RESULTS],
        time_column: Some("requested_at"),
        sql: "SELECT r.command_id, r.server_id, lower(r.kind) AS kind, r.parameters, \
              r.requested_by, r.authorised_by, r.requested_at, r.workflow_id, \
              lower(x.status) AS status, x.message, x.started_at, x.finished_at \
              FROM raw.commands_requests r LEFT JOIN \
              (SELECT *, row_number() OVER (PARTITION BY command_id \
               ORDER BY _log_timestamp DESC, _offset DESC) AS _rn FROM raw.commands_results) x \
              ON r.command_id = x.command_id AND x._rn = 1",
    },
    View {
        name: "workflow_events",
        about: "Every step of every workflow run",
        topics: &[catalog::WORKFLOWS_EVENTS],
        time_column: Some("at"),
        sql: "SELECT \"at\", workflow_id, workflow, server_id, step, lower(state) AS state, \
              message, attributes FROM raw.workflows_events",
    },
    View {
        name: "firmware_artifacts",
        about: "Firmware images in the repository",
        topics: &[catalog::FIRMWARE_ARTIFACTS],
        time_column: Some("stored_at"),
        sql: "SELECT stored_at, sha256, size, vendor, lower(component) AS component, name, \
              version, catalog, url, storage_path FROM raw.firmware_artifacts",
    },
    View {
        name: "firmware_scans",
        about: "Scan verdicts of firmware images",
        topics: &[catalog::FIRMWARE_SCANS],
        time_column: Some("scanned_at"),
        sql: "SELECT scanned_at, sha256, scanner, lower(verdict) AS verdict, findings \
              FROM raw.firmware_scans",
    },
    View {
        name: "firmware_catalog",
        about: "Every vendor catalog entry change (added, changed), newest last",
        topics: &[catalog::FIRMWARE_CATALOG],
        time_column: Some("synced_at"),
        sql: "SELECT synced_at, catalog, entry_id, vendor, component_type, name, version, \
              release_date, criticality, url, size, sha256, sha1, md5, reboot, system_ids, \
              models, pci_ids, guids, software_ids, change FROM raw.firmware_catalog",
    },
    View {
        name: "catalog_syncs",
        about: "Every catalog sync: updated, not modified or failed, with counts and the error",
        topics: &[catalog::FIRMWARE_CATALOG_SYNCS],
        time_column: Some("synced_at"),
        sql: "SELECT synced_at, catalog, format, url, status, error, entries, added, changed, \
              removed, sha256, signature FROM raw.firmware_catalog_syncs",
    },
    View {
        name: "firmware_updates",
        about: "Latest firmware verdict per server against the synced catalogs and the rule \
                pack's advisories: updates available, critical ones, every matched component, \
                and the advisories affecting what it runs",
        topics: &[catalog::FIRMWARE_UPDATES],
        time_column: None,
        sql: "SELECT server_id, evaluated_at, catalog_entries, updates_available, \
              critical_updates, components, advisories \
              FROM (SELECT *, row_number() OVER (PARTITION BY server_id \
                    ORDER BY _log_timestamp DESC, _offset DESC) AS _rn \
                    FROM raw.firmware_updates) \
              WHERE _rn = 1",
    },
    View {
        name: "firmware_findings",
        about: "Scanner findings on stored firmware images and on live servers' Secure Boot keys \
                (Redfish, efivars); a server's finding that went away is recorded as resolved",
        topics: &[catalog::FIRMWARE_FINDINGS],
        time_column: Some("first_seen"),
        sql: "SELECT first_seen, target, target_kind, rule_id, lower(severity) AS severity, \
              source, subject, variable, cert_subject, cert_issuer, cert_not_after, hash, \
              detail, rule_pack, state, _log_timestamp AS recorded_at, _offset AS record_offset \
              FROM raw.firmware_findings",
    },
    View {
        name: "secure_boot",
        about: "Latest Secure Boot state of every live server: mode, certificate subjects and \
                hash counts per variable (PK, KEK, db, dbx), open rule ids, worst severity",
        topics: &[catalog::FIRMWARE_SECUREBOOT],
        time_column: None,
        sql: "SELECT server_id, source, observed_at, enabled, current_boot, mode, variables, \
              open_findings, worst_severity, rule_pack \
              FROM (SELECT *, row_number() OVER (PARTITION BY server_id \
                    ORDER BY _log_timestamp DESC, _offset DESC) AS _rn \
                    FROM raw.firmware_secureboot) \
              WHERE _rn = 1",
    },
    View {
        name: "tpm_registrations",
        about: "TPM endorsement and attestation key registrations",
        topics: &[catalog::TPM_REGISTRATIONS],
        time_column: None,
        sql: "SELECT server_id, ek_fingerprint, ek_issuer, manufacturer, firmware_version, \
              ak_name, lower(status) AS status, reason, verified_at, approved_by \
              FROM raw.tpm_registrations",
    },
    View {
        name: "benchmarks",
        about: "Benchmark results, with the firmware they ran on",
        topics: &[catalog::BENCH_RESULTS],
        time_column: Some("at"),
        sql: "SELECT \"at\", server_id, benchmark, metric, value, unit, run_id, firmware_context \
              FROM raw.bench_results",
    },
    View {
        name: "diagnoses",
        about: "Diagnoses of broken servers and the remediation proposed",
        topics: &[catalog::DIAGNOSES],
        time_column: Some("at"),
        sql: "SELECT \"at\", server_id, diagnosis_id, model, classification, confidence, \
              evidence, proposed_remediation FROM raw.diagnoses",
    },
];

/// The view called `name`, if any.
pub fn view(name: &str) -> Option<&'static View> {
    VIEWS.iter().find(|v| v.name.eq_ignore_ascii_case(name))
}
