//! GitHub connector: OAuth App login, orgs and teams as groups. (Being written: it refuses every config until then.)

use portcullis_connector_sdk::{Connector, ConnectorError, Metadata};

struct Skeleton;

impl Connector for Skeleton {
    type Config = serde_json::Value;

    fn describe(_config: &Self::Config) -> Result<Metadata, ConnectorError> {
        Err(ConnectorError::Config("the github connector is not built yet".into()))
    }
}

portcullis_connector_sdk::export_connector!(Skeleton);
