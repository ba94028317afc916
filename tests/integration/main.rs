//! The one integration test binary. Its modules:
//!
//! - the Terraform acceptance tests (the modules next to `harness`),
//! - `emulator`: the control plane over real HTTP, in-process through the `run` its binary uses,
//! - `emulator_fuzz`: generated requests at every route,
//! - `bentoml_client`: the official `bentoml` client against the control plane,
//! - `web_ui`: the control plane's web page in headless Chromium.
//!
//! Acceptance tests: the real Terraform CLI drives the real provider binary against a real
//! `bentocloud-local`, over real sockets. Every scenario runs twice, once with Terraform 1.11.4
//! (`*_tf1_11`) and once with Terraform 1.0.3 (`*_tf1_0`); a missing Terraform fails the test
//! with the fix (see `harness::TfVersion::binary`), it never skips.
//!
//! Each test starts its own `bentocloud-local` (fresh data dir, free port) and its own
//! Terraform working directory; the provider is installed from a filesystem mirror by a
//! per-process CLI config (`TF_CLI_CONFIG_FILE`). Assertions read the server's own view over
//! HTTP, not only Terraform's state.

mod bentoml_client;
mod contract;
mod data_sources;
mod emulator;
mod emulator_fuzz;
mod harness;
mod import_drift;
mod lifecycle;
mod web_ui;

/// `tf_test!(module::scenario, name_tf1_11, name_tf1_0);` defines one `#[test]` per
/// Terraform version running `module::scenario(version)`.
macro_rules! tf_test {
    ($scenario:path, $v111:ident, $v10:ident) => {
        #[test]
        fn $v111() {
            $scenario(harness::TfVersion::V1_11)
        }
        #[test]
        fn $v10() {
            $scenario(harness::TfVersion::V1_0)
        }
    };
}

/// Like `tf_test!`, plus two variants against a control plane whose reported status lags by
/// 10 s (`timing.status_sync_ms`; the provider's `status_sync_period` follows, see
/// `harness::Tf::new`): the rollout verdicts must hold however stale the status is.
macro_rules! tf_test_lagged {
    ($scenario:path, $v111:ident, $v10:ident, $lag111:ident, $lag10:ident) => {
        tf_test!($scenario, $v111, $v10);
        #[test]
        fn $lag111() {
            harness::with_status_sync(10_000, || $scenario(harness::TfVersion::V1_11))
        }
        #[test]
        fn $lag10() {
            harness::with_status_sync(10_000, || $scenario(harness::TfVersion::V1_0))
        }
    };
}

/// Like `tf_test!`, plus two variants whose refresh reads come from listings of the cluster
/// (`BENTOCLOUD_REFRESH_BATCH=always`): drift, deletes and imports must read the same.
macro_rules! tf_test_listed {
    ($scenario:path, $v111:ident, $v10:ident, $list111:ident, $list10:ident) => {
        tf_test!($scenario, $v111, $v10);
        #[test]
        fn $list111() {
            harness::with_refresh_batch("always", || $scenario(harness::TfVersion::V1_11))
        }
        #[test]
        fn $list10() {
            harness::with_refresh_batch("always", || $scenario(harness::TfVersion::V1_0))
        }
    };
}

mod autoscaling;
mod background;
mod bad_input;
mod faults;
mod https;
mod rollouts;
mod security;
mod sequences;
mod workflow;

tf_test_listed!(
    lifecycle::create_then_empty_plan,
    create_then_empty_plan_tf1_11,
    create_then_empty_plan_tf1_0,
    create_then_empty_plan_listed_tf1_11,
    create_then_empty_plan_listed_tf1_0
);
tf_test!(
    lifecycle::update_in_place_keeps_id,
    update_in_place_keeps_id_tf1_11,
    update_in_place_keeps_id_tf1_0
);
tf_test!(
    lifecycle::name_or_cluster_change_replaces,
    name_or_cluster_change_replaces_tf1_11,
    name_or_cluster_change_replaces_tf1_0
);
tf_test!(
    lifecycle::destroy_leaves_server_empty,
    destroy_leaves_server_empty_tf1_11,
    destroy_leaves_server_empty_tf1_0
);
tf_test_listed!(
    import_drift::import_both_id_forms_then_empty_plan,
    import_both_id_forms_then_empty_plan_tf1_11,
    import_both_id_forms_then_empty_plan_tf1_0,
    import_both_id_forms_then_empty_plan_listed_tf1_11,
    import_both_id_forms_then_empty_plan_listed_tf1_0
);
tf_test_listed!(
    import_drift::out_of_band_change_shows_as_drift,
    out_of_band_change_shows_as_drift_tf1_11,
    out_of_band_change_shows_as_drift_tf1_0,
    out_of_band_change_shows_as_drift_listed_tf1_11,
    out_of_band_change_shows_as_drift_listed_tf1_0
);
tf_test_listed!(
    import_drift::out_of_band_delete_is_recreated,
    out_of_band_delete_is_recreated_tf1_11,
    out_of_band_delete_is_recreated_tf1_0,
    out_of_band_delete_is_recreated_listed_tf1_11,
    out_of_band_delete_is_recreated_listed_tf1_0
);
tf_test!(
    data_sources::fleet_filters_alone_and_combined,
    fleet_filters_alone_and_combined_tf1_11,
    fleet_filters_alone_and_combined_tf1_0
);
tf_test!(
    data_sources::single_deployment_data_source,
    single_deployment_data_source_tf1_11,
    single_deployment_data_source_tf1_0
);
tf_test_listed!(
    lifecycle::failed_rollout_fails_apply,
    failed_rollout_fails_apply_tf1_11,
    failed_rollout_fails_apply_tf1_0,
    failed_rollout_fails_apply_listed_tf1_11,
    failed_rollout_fails_apply_listed_tf1_0
);
tf_test!(
    lifecycle::multi_service_blocks,
    multi_service_blocks_tf1_11,
    multi_service_blocks_tf1_0
);

mod health;
mod shipping;

tf_test!(
    shipping::every_example_applies,
    every_example_applies_tf1_11,
    every_example_applies_tf1_0
);
tf_test!(
    shipping::release_zip_installs_from_a_filesystem_mirror,
    release_zip_installs_from_a_filesystem_mirror_tf1_11,
    release_zip_installs_from_a_filesystem_mirror_tf1_0
);
tf_test!(
    shipping::bentoml_login_context_needs_no_provider_configuration,
    bentoml_login_context_needs_no_provider_configuration_tf1_11,
    bentoml_login_context_needs_no_provider_configuration_tf1_0
);
tf_test!(
    https::private_ca_trusted_through_ssl_cert_file,
    private_ca_trusted_through_ssl_cert_file_tf1_11,
    private_ca_trusted_through_ssl_cert_file_tf1_0
);
tf_test!(
    https::untrusted_ca_fails_at_once_naming_ssl_cert_file,
    untrusted_ca_fails_at_once_naming_ssl_cert_file_tf1_11,
    untrusted_ca_fails_at_once_naming_ssl_cert_file_tf1_0
);

mod real_api;

tf_test!(
    real_api::canary_set_with_the_official_client_survives_an_envs_update,
    canary_set_with_the_official_client_survives_an_envs_update_tf1_11,
    canary_set_with_the_official_client_survives_an_envs_update_tf1_0
);
tf_test!(
    real_api::entry_service_from_the_bento_when_documents_omit_its_manifest,
    entry_service_from_the_bento_when_documents_omit_its_manifest_tf1_11,
    entry_service_from_the_bento_when_documents_omit_its_manifest_tf1_0
);
tf_test!(
    real_api::bento_without_version_keeps_the_running_version,
    bento_without_version_keeps_the_running_version_tf1_11,
    bento_without_version_keeps_the_running_version_tf1_0
);

mod lookups;

tf_test!(
    lookups::clusters_and_instance_types_match_the_configuration,
    lookups_clusters_and_instance_types_tf1_11,
    lookups_clusters_and_instance_types_tf1_0
);
tf_test!(
    lookups::bento_lookup_by_version_latest_and_missing,
    lookups_bento_version_latest_and_missing_tf1_11,
    lookups_bento_version_latest_and_missing_tf1_0
);
tf_test!(
    lookups::bad_lookup_inputs_fail_at_plan_naming_the_attribute,
    lookups_bad_inputs_fail_at_plan_tf1_11,
    lookups_bad_inputs_fail_at_plan_tf1_0
);
// `terraform test` exists from Terraform 1.6: the module tests run on 1.11.4 only, and the
// 1.0.3 test pins what the guide says about it.
#[test]
fn lookups_module_tests_pass_tf1_11() {
    lookups::inference_stack_module_tests_pass(harness::TfVersion::V1_11)
}
#[test]
fn lookups_module_tests_fail_on_a_broken_assertion_tf1_11() {
    lookups::inference_stack_module_tests_fail_on_a_broken_assertion(harness::TfVersion::V1_11)
}
#[test]
fn lookups_module_tests_are_not_run_by_tf1_0() {
    lookups::inference_stack_module_tests_are_not_run_by_terraform_1_0(harness::TfVersion::V1_0)
}

tf_test!(
    contract::made_anywhere_imported_updated_destroyed,
    made_anywhere_imported_updated_destroyed_tf1_11,
    made_anywhere_imported_updated_destroyed_tf1_0
);
tf_test_lagged!(
    contract::stopped_elsewhere_is_brought_back,
    stopped_elsewhere_is_brought_back_tf1_11,
    stopped_elsewhere_is_brought_back_tf1_0,
    stopped_elsewhere_is_brought_back_lag10s_tf1_11,
    stopped_elsewhere_is_brought_back_lag10s_tf1_0
);
tf_test!(
    contract::failing_on_its_own_changes_no_plan,
    failing_on_its_own_changes_no_plan_tf1_11,
    failing_on_its_own_changes_no_plan_tf1_0
);

mod settings;

tf_test!(
    settings::every_setting_round_trips,
    every_setting_round_trips_tf1_11,
    every_setting_round_trips_tf1_0
);
tf_test!(
    settings::default_labels_and_labels_set_elsewhere,
    default_labels_and_labels_set_elsewhere_tf1_11,
    default_labels_and_labels_set_elsewhere_tf1_0
);
tf_test!(
    settings::bad_values_fail_at_plan_time,
    bad_values_fail_at_plan_time_tf1_11,
    bad_values_fail_at_plan_time_tf1_0
);
tf_test!(
    settings::canary_block_round_trips,
    canary_block_round_trips_tf1_11,
    canary_block_round_trips_tf1_0
);

mod progressive;

tf_test!(
    progressive::good_bento_promoted_through_its_steps,
    progressive_good_bento_promoted_through_its_steps_tf1_11,
    progressive_good_bento_promoted_through_its_steps_tf1_0
);
tf_test!(
    progressive::crashing_bento_aborted_at_the_first_step,
    progressive_crashing_bento_aborted_at_the_first_step_tf1_11,
    progressive_crashing_bento_aborted_at_the_first_step_tf1_0
);
tf_test!(
    progressive::failing_path_aborted_by_the_probes,
    progressive_failing_path_aborted_by_the_probes_tf1_11,
    progressive_failing_path_aborted_by_the_probes_tf1_0
);
tf_test!(
    progressive::ctrl_c_during_a_bake_removes_the_canary,
    progressive_ctrl_c_during_a_bake_removes_the_canary_tf1_11,
    progressive_ctrl_c_during_a_bake_removes_the_canary_tf1_0
);
