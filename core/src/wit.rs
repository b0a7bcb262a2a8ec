//! Conversions between the engine's types and the types that WIT bindings generate for the
//! `vigil:detect` package.
//!
//! Both `wit-bindgen` (inside the core component) and `wasmtime::component::bindgen!` (in the host)
//! generate structurally identical Rust types from the same WIT, in different crates. Rather than
//! write the mapping twice, [`impl_wit_conversions!`](crate::impl_wit_conversions) expands it in
//! the crate that owns the generated types.

/// Implements `From` in both directions between the core types and generated WIT types.
///
/// `types` is the path of the generated `vigil:detect/types` module and `detector` the path of the
/// generated `vigil:detect/detector` module, for example
/// `impl_wit_conversions!(bindings::vigil::detect::types, bindings::exports::vigil::detect::detector)`.
#[macro_export]
macro_rules! impl_wit_conversions {
    ($($types:ident)::+, $($detector:ident)::+) => {
        const _: () = {
            use $crate::model as core;
            use $crate::ingest as core_ingest;
            use $($types)::+ as wit;
            use $($detector)::+ as witd;

            fn map_vec<A, B: From<A>>(items: Vec<A>) -> Vec<B> {
                items.into_iter().map(B::from).collect()
            }

            fn map_opt<A, B: From<A>>(item: Option<A>) -> Option<B> {
                item.map(B::from)
            }

            $crate::impl_wit_conversions!(@enum core::ComparisonOperator, wit::ComparisonOperator,
                LessThan, LessThanEquals, GreaterThan, GreaterThanEquals, InCidrSet, NotInCidrSet,
                InPortSet, NotInPortSet, InSet, NotInSet);
            $crate::impl_wit_conversions!(@enum core::ConfidenceLevel, wit::ConfidenceLevel,
                Low, Medium, High);
            $crate::impl_wit_conversions!(@enum core::DimensionValueOperator,
                wit::DimensionValueOperator, In, NotIn);
            $crate::impl_wit_conversions!(@enum core::BehaviorCriteriaType,
                wit::BehaviorCriteriaType, Static, Statistical, MachineLearning);
            $crate::impl_wit_conversions!(@enum core::VerificationState, wit::VerificationState,
                FalsePositive, BenignPositive, TruePositive, Unknown);
            $crate::impl_wit_conversions!(@enum core::ViolationEventType, wit::ViolationEventType,
                InAlarm, AlarmCleared, AlarmInvalidated);
            $crate::impl_wit_conversions!(@enum core::MitigationActionType,
                wit::MitigationActionType, UpdateDeviceCertificate, UpdateCaCertificate,
                AddThingsToThingGroup, ReplaceDefaultPolicyVersion, EnableIotLogging,
                PublishFindingToSns);
            $crate::impl_wit_conversions!(@enum core::ModelStatus, witd::ModelStatus,
                PendingBuild, Active, Expired);
            $crate::impl_wit_conversions!(@enum core::TaskStatus, witd::TaskStatus,
                InProgress, Successful, Failed, Canceled);
            $crate::impl_wit_conversions!(@enum core::ExecutionStatus, witd::ExecutionStatus,
                InProgress, Successful, Failed, Skipped);
            $crate::impl_wit_conversions!(@enum core::CustomMetricType, witd::CustomMetricType,
                StringList, IpAddressList, NumberList, Number);
            $crate::impl_wit_conversions!(@enum core::DimensionType, witd::DimensionType,
                TopicFilter);
            $crate::impl_wit_conversions!(@enum core_ingest::CloudEventKind, witd::CloudEventKind,
                ConnectionAttempt, Disconnect, AuthorizationFailure, MessageSent, MessageReceived);
            $crate::impl_wit_conversions!(@enum $crate::report::ReportFormat, witd::ReportFormat,
                Json, Cbor);
            $crate::impl_wit_conversions!(@enum $crate::ml::Scale, witd::ValueScale, Count, Real);
            $crate::impl_wit_conversions!(@enum $crate::detector::EvidenceKind,
                witd::EvidenceKind, Seasonal, Shift, Range, Shape);
            $crate::impl_wit_conversions!(@record $crate::detector::Verdict, witd::AnomalyVerdict,
                plain { anomaly_score, z, delay, surprise }, mapped {}, optional { evidence });

            $crate::impl_wit_conversions!(@record core::MetricValue, wit::MetricValue,
                plain { count, ports, number, numbers, strings, cidrs }, mapped {});
            $crate::impl_wit_conversions!(@record core::MetricDimension, wit::MetricDimension,
                plain { dimension_name }, mapped {}, optional { operator });
            $crate::impl_wit_conversions!(@record core::StatisticalThreshold,
                wit::StatisticalThreshold, plain { statistic }, mapped {});
            $crate::impl_wit_conversions!(@record core::MachineLearningDetectionConfig,
                wit::MachineLearningDetectionConfig, plain {}, mapped { confidence_level });
            $crate::impl_wit_conversions!(@record core::BehaviorCriteria, wit::BehaviorCriteria,
                plain { duration_seconds, consecutive_datapoints_to_alarm,
                    consecutive_datapoints_to_clear },
                mapped {},
                optional { comparison_operator, value, statistical_threshold, ml_detection_config });
            $crate::impl_wit_conversions!(@record core::Behavior, wit::Behavior,
                plain { name, metric, suppress_alerts, export_metric }, mapped {},
                optional { metric_dimension, criteria });
            $crate::impl_wit_conversions!(@record core::MetricToRetain, wit::MetricToRetain,
                plain { metric, export_metric }, mapped {}, optional { metric_dimension });
            $crate::impl_wit_conversions!(@record core::MlExplanation, wit::MlExplanation,
                plain { expected_low, expected_high, observed, anomaly_score }, mapped {});
            $crate::impl_wit_conversions!(@record core::ViolationEventAdditionalInfo,
                wit::ViolationEventAdditionalInfo, plain {}, mapped {},
                optional { confidence_level, explanation });
            $crate::impl_wit_conversions!(@record core::ActiveViolation, wit::ActiveViolation,
                plain { violation_id, thing_name, security_profile_name,
                    verification_state_description, last_violation_time, violation_start_time },
                mapped { behavior, verification_state },
                optional { last_violation_value, violation_event_additional_info });
            $crate::impl_wit_conversions!(@record core::ViolationEvent, wit::ViolationEvent,
                plain { violation_id, thing_name, security_profile_name,
                    verification_state_description, violation_event_time },
                mapped { behavior, violation_event_type, verification_state },
                optional { metric_value, violation_event_additional_info });
            $crate::impl_wit_conversions!(@record core::AddThingsToThingGroupParams,
                wit::AddThingsToThingGroupParams,
                plain { thing_group_names, override_dynamic_groups }, mapped {});
            $crate::impl_wit_conversions!(@record core::ReplaceDefaultPolicyVersionParams,
                wit::ReplaceDefaultPolicyVersionParams, plain { template_name }, mapped {});
            $crate::impl_wit_conversions!(@record core::PublishFindingToSnsParams,
                wit::PublishFindingToSnsParams, plain { topic_arn }, mapped {});
            $crate::impl_wit_conversions!(@record core::UpdateCertificateParams,
                wit::UpdateCertificateParams, plain {}, mapped { action });
            $crate::impl_wit_conversions!(@record core::EnableIotLoggingParams,
                wit::EnableIotLoggingParams, plain { role_arn_for_logging }, mapped { log_level });
            $crate::impl_wit_conversions!(@record core::MitigationActionParams,
                wit::MitigationActionParams, plain {}, mapped {},
                optional { update_device_certificate_params, update_ca_certificate_params,
                    add_things_to_thing_group_params, replace_default_policy_version_params,
                    enable_iot_logging_params, publish_finding_to_sns_params });
            $crate::impl_wit_conversions!(@record core::MitigationAction, witd::MitigationAction,
                plain { action_name, action_id, action_arn, role_arn, creation_date,
                    last_modified_date },
                mapped { action_params, action_type });
            $crate::impl_wit_conversions!(@record core::CustomMetric, witd::CustomMetric,
                plain { metric_name, metric_arn, display_name, creation_date, last_modified_date },
                mapped { metric_type });
            $crate::impl_wit_conversions!(@record core::Dimension, witd::Dimension,
                plain { name, arn, string_values, creation_date, last_modified_date },
                mapped { dimension_type });
            $crate::impl_wit_conversions!(@record $crate::engine::SecurityProfileFilter,
                witd::SecurityProfileFilter, plain { dimension_name, metric_name }, mapped {});
            $crate::impl_wit_conversions!(@record $crate::engine::EngineStats, witd::EngineStats,
                plain { datapoints_accepted, reports_accepted, reports_rejected, violation_events,
                    things, security_profiles, retained_datapoints_dropped },
                mapped {});
            $crate::impl_wit_conversions!(@record core::BehaviorModelTrainingSummary,
                witd::TrainingSummary,
                plain { security_profile_name, behavior_name, training_data_collection_start_date,
                    datapoints_collection_percentage, last_model_refresh_date },
                mapped { model_status });
            $crate::impl_wit_conversions!(@record core::DetectMitigationActionsTaskTarget,
                witd::TaskTarget, plain { violation_ids, security_profile_name, behavior_name },
                mapped {});
            $crate::impl_wit_conversions!(@record core::ViolationEventOccurrenceRange,
                witd::TimeRange, plain { start_time, end_time }, mapped {});
            $crate::impl_wit_conversions!(@record core::TaskRequest, witd::TaskRequest,
                plain { task_id, actions, include_only_active_violations,
                    include_suppressed_alerts },
                mapped { target }, optional { violation_event_occurrence_range });
            $crate::impl_wit_conversions!(@record core::TaskStatistics, witd::TaskStatistics,
                plain { actions_executed, actions_skipped, actions_failed }, mapped {});
            $crate::impl_wit_conversions!(@record core::DetectMitigationActionsTaskSummary,
                witd::TaskSummary,
                plain { task_id, task_start_time, task_end_time, only_active_violations_included,
                    suppressed_alerts_included },
                mapped { task_status, target, task_statistics },
                optional { violation_event_occurrence_range }, list { actions_definition });
            $crate::impl_wit_conversions!(@record core::DetectMitigationActionExecution,
                witd::Execution,
                plain { task_id, violation_id, action_name, thing_name, execution_start_date,
                    execution_end_date, error_code, message },
                mapped { status });
            $crate::impl_wit_conversions!(@record $crate::mitigation::PendingExecution,
                witd::PendingExecution, plain {}, mapped { execution, action, violation });
            $crate::impl_wit_conversions!(@record core_ingest::Datapoint, witd::Datapoint,
                plain { thing_name, metric, dimension_name, timestamp }, mapped { value });
            $crate::impl_wit_conversions!(@record core_ingest::CloudEvent, witd::CloudEvent,
                plain { thing_name, timestamp, count, message_bytes }, mapped { kind });
            $crate::impl_wit_conversions!(@record core_ingest::DeviceReport, witd::DeviceReport,
                plain { thing_name, received_at, payload }, mapped { format });
            $crate::impl_wit_conversions!(@record core_ingest::Rejection,
                witd::DatapointRejection, plain { index, message }, mapped {});
            $crate::impl_wit_conversions!(@record core_ingest::IngestResult, witd::IngestResult,
                plain { accepted }, mapped {}, optional {}, list { rejected, events });
            $crate::impl_wit_conversions!(@record $crate::engine::EngineConfig,
                witd::EngineConfig,
                plain { region, account_id, ml_training_days, ml_min_datapoints }, mapped {});
            $crate::impl_wit_conversions!(@record $crate::ValidationError, wit::ValidationError,
                plain { field, message }, mapped {});
            $crate::impl_wit_conversions!(@record $crate::engine::ExecutionFilter,
                witd::ExecutionFilter,
                plain { task_id, violation_id, thing_name, start_time, end_time }, mapped {});
            $crate::impl_wit_conversions!(@record $crate::violations::ViolationFilter,
                witd::ViolationFilter,
                plain { thing_name, security_profile_name, list_suppressed_alerts }, mapped {},
                optional { behavior_criteria_type, verification_state });

            impl From<core::SecurityProfile> for wit::SecurityProfile {
                fn from(p: core::SecurityProfile) -> Self {
                    let alert_targets = p
                        .alert_targets
                        .into_iter()
                        .map(|(alert_target_type, t)| wit::AlertTarget {
                            alert_target_type,
                            alert_target_arn: t.alert_target_arn,
                            role_arn: t.role_arn,
                        })
                        .collect();
                    Self {
                        name: p.name,
                        description: p.description,
                        behaviors: map_vec(p.behaviors),
                        alert_targets,
                        additional_metrics_to_retain: p.additional_metrics_to_retain,
                        additional_metrics_to_retain_v2: map_vec(p.additional_metrics_to_retain_v2),
                    }
                }
            }

            impl From<wit::SecurityProfile> for core::SecurityProfile {
                fn from(p: wit::SecurityProfile) -> Self {
                    let alert_targets = p
                        .alert_targets
                        .into_iter()
                        .map(|t| {
                            let target = core::AlertTarget {
                                alert_target_arn: t.alert_target_arn,
                                role_arn: t.role_arn,
                            };
                            (t.alert_target_type, target)
                        })
                        .collect();
                    Self {
                        name: p.name,
                        description: p.description,
                        behaviors: map_vec(p.behaviors),
                        alert_targets,
                        additional_metrics_to_retain: p.additional_metrics_to_retain,
                        additional_metrics_to_retain_v2: map_vec(p.additional_metrics_to_retain_v2),
                    }
                }
            }

            $crate::impl_wit_conversions!(@record core::StoredSecurityProfile,
                wit::StoredSecurityProfile,
                plain { arn, version, creation_date, last_modified_date }, mapped { profile });

            impl From<String> for wit::CertificateAction {
                fn from(_: String) -> Self {
                    // `DEACTIVATE` is the only certificate action; validation rejects others.
                    wit::CertificateAction::Deactivate
                }
            }

            impl From<wit::CertificateAction> for String {
                fn from(_: wit::CertificateAction) -> Self {
                    "DEACTIVATE".to_string()
                }
            }

            impl From<String> for wit::IotLogLevel {
                fn from(level: String) -> Self {
                    match level.as_str() {
                        "DEBUG" => wit::IotLogLevel::Debug,
                        "INFO" => wit::IotLogLevel::Info,
                        "ERROR" => wit::IotLogLevel::Error,
                        "WARN" => wit::IotLogLevel::Warn,
                        _ => wit::IotLogLevel::Disabled,
                    }
                }
            }

            impl From<wit::IotLogLevel> for String {
                fn from(level: wit::IotLogLevel) -> Self {
                    let name = match level {
                        wit::IotLogLevel::Debug => "DEBUG",
                        wit::IotLogLevel::Info => "INFO",
                        wit::IotLogLevel::Error => "ERROR",
                        wit::IotLogLevel::Warn => "WARN",
                        wit::IotLogLevel::Disabled => "DISABLED",
                    };
                    name.to_string()
                }
            }

            impl From<$crate::Error> for wit::EngineError {
                fn from(error: $crate::Error) -> Self {
                    use $crate::Error as E;
                    match error {
                        E::InvalidRequest(m) => wit::EngineError::InvalidRequest(m),
                        E::ValidationFailed(v) => wit::EngineError::ValidationFailed(map_vec(v)),
                        E::ResourceNotFound(m) => wit::EngineError::ResourceNotFound(m),
                        E::ResourceAlreadyExists(m) => wit::EngineError::ResourceAlreadyExists(m),
                        E::VersionConflict(m) => wit::EngineError::VersionConflict(m),
                        E::LimitExceeded(m) => wit::EngineError::LimitExceeded(m),
                        E::TaskAlreadyExists(m) => wit::EngineError::TaskAlreadyExists(m),
                        E::InvalidSnapshot(m) => wit::EngineError::InvalidSnapshot(m),
                    }
                }
            }

            impl From<wit::EngineError> for $crate::Error {
                fn from(error: wit::EngineError) -> Self {
                    use $crate::Error as E;
                    match error {
                        wit::EngineError::InvalidRequest(m) => E::InvalidRequest(m),
                        wit::EngineError::ValidationFailed(v) => E::ValidationFailed(map_vec(v)),
                        wit::EngineError::ResourceNotFound(m) => E::ResourceNotFound(m),
                        wit::EngineError::ResourceAlreadyExists(m) => E::ResourceAlreadyExists(m),
                        wit::EngineError::VersionConflict(m) => E::VersionConflict(m),
                        wit::EngineError::LimitExceeded(m) => E::LimitExceeded(m),
                        wit::EngineError::TaskAlreadyExists(m) => E::TaskAlreadyExists(m),
                        wit::EngineError::InvalidSnapshot(m) => E::InvalidSnapshot(m),
                    }
                }
            }

            impl From<$crate::report::ReportRejection> for witd::ReportRejection {
                fn from(r: $crate::report::ReportRejection) -> Self {
                    Self {
                        error_code: r.error_code,
                        error_message: r.error_message,
                        report_id: r.report_id,
                    }
                }
            }

            impl From<core_ingest::ReportOutcome> for witd::ReportOutcome {
                fn from(outcome: core_ingest::ReportOutcome) -> Self {
                    match outcome {
                        core_ingest::ReportOutcome::Accepted(id) => witd::ReportOutcome::Accepted(id),
                        core_ingest::ReportOutcome::Rejected(r) => {
                            witd::ReportOutcome::Rejected(r.into())
                        }
                    }
                }
            }

            impl From<witd::ReportOutcome> for core_ingest::ReportOutcome {
                fn from(outcome: witd::ReportOutcome) -> Self {
                    match outcome {
                        witd::ReportOutcome::Accepted(id) => core_ingest::ReportOutcome::Accepted(id),
                        witd::ReportOutcome::Rejected(r) => {
                            core_ingest::ReportOutcome::Rejected($crate::report::ReportRejection {
                                error_code: r.error_code,
                                error_message: r.error_message,
                                report_id: r.report_id,
                            })
                        }
                    }
                }
            }

            impl From<$crate::mitigation::ExecutionOutcome> for witd::ExecutionOutcome {
                fn from(outcome: $crate::mitigation::ExecutionOutcome) -> Self {
                    match outcome {
                        $crate::mitigation::ExecutionOutcome::Successful => {
                            witd::ExecutionOutcome::Successful
                        }
                        $crate::mitigation::ExecutionOutcome::Failed { error_code, message } => {
                            witd::ExecutionOutcome::Failed((error_code, message))
                        }
                    }
                }
            }

            impl From<witd::ExecutionOutcome> for $crate::mitigation::ExecutionOutcome {
                fn from(outcome: witd::ExecutionOutcome) -> Self {
                    match outcome {
                        witd::ExecutionOutcome::Successful => {
                            $crate::mitigation::ExecutionOutcome::Successful
                        }
                        witd::ExecutionOutcome::Failed((error_code, message)) => {
                            $crate::mitigation::ExecutionOutcome::Failed { error_code, message }
                        }
                    }
                }
            }
        };
    };

    (@enum $core:ty, $wit:ty, $($variant:ident),+) => {
        impl From<$core> for $wit {
            fn from(value: $core) -> Self {
                type C = $core;
                match value { $(C::$variant => Self::$variant,)+ }
            }
        }

        impl From<$wit> for $core {
            fn from(value: $wit) -> Self {
                type W = $wit;
                match value { $(W::$variant => Self::$variant,)+ }
            }
        }
    };

    (@record $core:ty, $wit:ty, plain { $($plain:ident),* $(,)? }, mapped { $($mapped:ident),* $(,)? }) => {
        $crate::impl_wit_conversions!(@record $core, $wit, plain { $($plain),* },
            mapped { $($mapped),* }, optional {}, list {});
    };

    (@record $core:ty, $wit:ty, plain { $($plain:ident),* $(,)? }, mapped { $($mapped:ident),* $(,)? },
        optional { $($optional:ident),* $(,)? }) => {
        $crate::impl_wit_conversions!(@record $core, $wit, plain { $($plain),* },
            mapped { $($mapped),* }, optional { $($optional),* }, list {});
    };

    (@record $core:ty, $wit:ty, plain { $($plain:ident),* $(,)? }, mapped { $($mapped:ident),* $(,)? },
        optional { $($optional:ident),* $(,)? }, list { $($list:ident),* $(,)? }) => {
        impl From<$core> for $wit {
            fn from(value: $core) -> Self {
                Self {
                    $($plain: value.$plain,)*
                    $($mapped: value.$mapped.into(),)*
                    $($optional: map_opt(value.$optional),)*
                    $($list: map_vec(value.$list),)*
                }
            }
        }

        impl From<$wit> for $core {
            fn from(value: $wit) -> Self {
                Self {
                    $($plain: value.$plain,)*
                    $($mapped: value.$mapped.into(),)*
                    $($optional: map_opt(value.$optional),)*
                    $($list: map_vec(value.$list),)*
                }
            }
        }
    };
}
