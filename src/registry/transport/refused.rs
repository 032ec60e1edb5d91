//! What a refused request says: whose credentials were sent (or withheld, or not found, and
//! where they were looked for) and how to fix it.

use super::{Transport, auth_host};
use crate::registry::error::RegistryError;
use crate::registry::route::Route;

impl Transport {
    pub(super) fn unauthorized(
        &self,
        route: &Route,
        url: &str,
        status: u16,
        said: String,
    ) -> RegistryError {
        let host = route.source.registry();
        let unavailable = self.auth.unavailable(auth_host(route));
        let withheld = self.withheld_from(route);
        let mut help = match (self.credentials(route), unavailable, withheld) {
            (Some(_), _, Some(realm)) => format!(
                "`{}` sends clients to the token service `{realm}`, another host: driver-matrix sends a registry's credentials only to that registry, so the token was asked for without them. If `{realm}` is the registry's own token service, add credentials for `{realm}` to your auth file (`podman login {realm}`, or an `auths` entry keyed `{realm}`)",
                route.host
            ),
            (Some((_, path)), _, None) => format!(
                "the credentials for `{}` from `{}` were refused; log in again (`podman login --authfile {} {}`) or fix that file",
                route.host,
                path.display(),
                path.display(),
                route.host
            ),
            (None, Some(why), _) => why,
            (None, None, _) => {
                let searched: Vec<String> = self
                    .auth
                    .searched()
                    .iter()
                    .map(|p| format!("`{}`", p.display()))
                    .collect();
                format!(
                    "no credentials for `{}` were found (looked in {}); pass one with `--authfile`",
                    route.host,
                    if searched.is_empty() {
                        "no file".to_string()
                    } else {
                        searched.join(", ")
                    }
                )
            }
        };
        if host == "quay.io" || route.host == "quay.io" {
            help.push_str(
                "; quay.io/openshift-release-dev needs the Red Hat pull secret (console.redhat.com/openshift/install/pull-secret)",
            );
        }
        RegistryError::Unauthorized {
            reference: route.source.to_string(),
            tried: url.to_string(),
            status,
            said,
            help,
        }
    }
}
