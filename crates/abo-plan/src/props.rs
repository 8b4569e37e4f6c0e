//! Build-time property rules that need no I/O: the seed's capability property steps
//! (`props_<capability>`, AC-R1/AC-R2). The engine calls these when it runs a
//! [`StepKind::SetCapabilityProperties`](crate::StepKind::SetCapabilityProperties) step.

use crate::model::CapabilityView;
use std::collections::BTreeMap;
use std::fmt;

/// Why capability properties could not be set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapabilityPropsError {
    /// The worker declares several versions and the build says which one to use nowhere.
    Ambiguous {
        capability: String,
        versions: Vec<String>,
    },
}

impl fmt::Display for CapabilityPropsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CapabilityPropsError::Ambiguous { capability, versions } => write!(
                f,
                "the worker declares {capability} versions {} and no version property selects one; \
                 configure `version-property` in [capability-env.{capability}] or dispatch on it with build-for",
                versions.join(", ")
            ),
        }
    }
}

impl std::error::Error for CapabilityPropsError {}

/// The `cap_<capability>_<option>` properties for the capability version a build uses.
///
/// `version` is the value of the step's version property when the build has it. Without
/// it, the worker must declare exactly one line of that capability (AC-R2). A version with
/// no options, or a version the worker does not declare, sets nothing (AC-R1).
pub fn capability_properties(
    capabilities: &[CapabilityView],
    capability: &str,
    version: Option<&str>,
) -> Result<BTreeMap<String, String>, CapabilityPropsError> {
    let lines: Vec<&CapabilityView> = capabilities
        .iter()
        .filter(|c| c.name == capability)
        .collect();
    let chosen = match version {
        Some(v) => lines
            .iter()
            .find(|c| c.version.as_deref() == Some(v))
            .copied(),
        None => match lines.as_slice() {
            [] => None,
            [one] => Some(*one),
            several => {
                return Err(CapabilityPropsError::Ambiguous {
                    capability: capability.to_string(),
                    versions: several
                        .iter()
                        .map(|c| c.version.clone().unwrap_or_default())
                        .collect(),
                })
            }
        },
    };
    Ok(chosen
        .map(|c| {
            c.options
                .iter()
                .map(|(k, v)| (format!("cap_{capability}_{k}"), v.clone()))
                .collect()
        })
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(name: &str, version: Option<&str>, options: &[(&str, &str)]) -> CapabilityView {
        CapabilityView {
            name: name.into(),
            version: version.map(Into::into),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn ac_r1_version_property_selects_the_line() {
        let caps = [
            cap("postgresql", Some("9.1"), &[("port", "5432")]),
            cap("postgresql", Some("9.2"), &[("port", "5433")]),
        ];
        assert_eq!(
            capability_properties(&caps, "postgresql", Some("9.2")),
            Ok(props(&[("cap_postgresql_port", "5433")]))
        );
        assert_eq!(
            capability_properties(&caps, "postgresql", Some("9.1")),
            Ok(props(&[("cap_postgresql_port", "5432")]))
        );
        // A version without options, or one the worker lacks, sets nothing.
        let bare = [cap("postgresql", Some("8.4"), &[])];
        assert_eq!(
            capability_properties(&bare, "postgresql", Some("8.4")),
            Ok(props(&[]))
        );
        assert_eq!(
            capability_properties(&caps, "postgresql", Some("10")),
            Ok(props(&[]))
        );
    }

    #[test]
    fn ac_r2_without_version_property() {
        let one = [
            cap("python", Some("2.6"), &[("bin", "python2.6")]),
            cap("selenium", None, &[]),
        ];
        assert_eq!(
            capability_properties(&one, "python", None),
            Ok(props(&[("cap_python_bin", "python2.6")]))
        );
        // A version-less capability line sets nothing.
        assert_eq!(
            capability_properties(&one, "selenium", None),
            Ok(props(&[]))
        );
        assert_eq!(
            capability_properties(&one, "rabbitmq", None),
            Ok(props(&[]))
        );
        let two = [
            cap("python", Some("2.6"), &[("bin", "python2.6")]),
            cap("python", Some("2.7"), &[("bin", "python2.7")]),
        ];
        let err = capability_properties(&two, "python", None).unwrap_err();
        assert!(err.to_string().contains("2.6, 2.7"), "{err}");
    }
}
