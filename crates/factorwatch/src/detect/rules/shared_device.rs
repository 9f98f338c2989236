//! `shared_device`: one Okta Verify device (its Okta device id, from an enrollment or
//! `device.user.add`) bound to two or more users within the window.

use super::shared::Shared;
use crate::detect::signal::{Signal, What};
use crate::detect::{RuleId, RuleSettings};

pub fn rule(settings: RuleSettings) -> Shared {
    Shared::new(
        RuleId::SharedDevice,
        settings,
        device,
        "Okta Verify device",
        "An attacker's one phone enrolled on every account they took over looks like this; so does a shared kiosk or a help-desk test device. Ask the users whose device it is.",
    )
}

fn device(s: &Signal) -> Option<String> {
    match &s.what {
        What::Enrolled { device, .. } => device.clone(),
        What::DeviceAdded { device } => Some(device.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::classify::factor::Kind;
    use crate::detect::RuleId;
    use crate::detect::signal::What;

    const RULE: RuleId = RuleId::SharedDevice;

    #[test]
    fn one_device_for_two_users_fires_and_one_user_twice_does_not() {
        let push = |id: &str, m: i64, user: &str, dev: &str| {
            signal(
                id,
                m,
                What::Enrolled {
                    factor: Kind::Push,
                    phone: None,
                    device: Some(dev.into()),
                },
                user,
                user,
                home(),
            )
        };
        let added = |id: &str, m: i64, user: &str, dev: &str| {
            signal(
                id,
                m,
                What::DeviceAdded { device: dev.into() },
                user,
                user,
                home(),
            )
        };
        let f = of(
            &run(&[push("a", 0, "u1", "d1"), added("b", 60, "u2", "d1")]),
            RULE,
        );
        assert_eq!(f.len(), 1);
        assert!(f[0].summary.contains("Okta Verify device"));
        assert!(
            of(
                &run(&[push("a", 0, "u1", "d1"), added("b", 60, "u1", "d1")]),
                RULE
            )
            .is_empty()
        );
        assert!(
            of(
                &run(&[push("a", 0, "u1", "d1"), push("b", 60, "u2", "d2")]),
                RULE
            )
            .is_empty()
        );
    }
}
