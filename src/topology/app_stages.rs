//! The apps that run in this process, built once: each either a stage of
//! its own (`app:<name>`) or chained into the router (in).

use std::collections::HashMap;
use std::sync::Arc;

use crate::apps::{self, runner::AppStage, App, Services};
use crate::config::Pipeline;
use crate::state::Tables;

/// The apps that run here, by name.
pub(super) struct Apps {
    /// Every one, in pipeline order: built-ins, and the external apps
    /// registered with `Topology::with_app`.
    pub(super) in_order: Vec<(String, Arc<dyn App>)>,
    /// Those chained into the router (in), in pipeline order.
    pub(super) chained: Vec<(String, Arc<dyn App>)>,
}

impl Apps {
    /// Build the pipeline's apps; `custom` are the external ones registered
    /// in this process, `chained` the names of the apps chained into the router.
    pub(super) fn build(
        p: &Pipeline,
        custom: &HashMap<String, Arc<dyn App>>,
        tables: &Tables,
        chained: &[&str],
    ) -> Apps {
        let in_order: Vec<(String, Arc<dyn App>)> = p
            .apps
            .iter()
            .filter_map(|a| {
                let app = custom
                    .get(a.name())
                    .cloned()
                    .or_else(|| apps::build(a, &tables.polls))?;
                Some((a.name().to_owned(), app))
            })
            .collect();
        let chained = in_order
            .iter()
            .filter(|(name, _)| chained.contains(&name.as_str()))
            .cloned()
            .collect();
        Apps { in_order, chained }
    }

    /// Every app, in pipeline order (what the router (out) hands replies to).
    pub(super) fn all(&self) -> Vec<Arc<dyn App>> {
        self.in_order.iter().map(|(_, a)| a.clone()).collect()
    }

    /// The stage of the app `name`, writing its replies to `outbound`;
    /// `None` when no such app runs here.
    pub(super) fn stage(
        &self,
        name: &str,
        services: &Services,
        outbound: &str,
    ) -> Option<AppStage> {
        let (_, app) = self.in_order.iter().find(|(n, _)| n == name)?;
        Some(AppStage::new(
            app.clone(),
            services.clone(),
            Arc::from(outbound),
        ))
    }
}
