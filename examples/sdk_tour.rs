//! The SDK tour from `gatekey::Client`'s documentation, runnable against a live core:
//! lists gateways, generates and downloads a config, creates and deletes an access
//! rule. `GATEKEY_URL`, `GATEKEY_API_KEY` and `GATEKEY_NETWORK_ID` say where and how.
#![allow(clippy::expect_used, missing_docs)]

use gatekey::Client;

#[tokio::main]
async fn main() -> Result<(), gatekey::Error> {
    let url = std::env::var("GATEKEY_URL").expect("GATEKEY_URL");
    let key = std::env::var("GATEKEY_API_KEY").expect("GATEKEY_API_KEY");
    let network_id = std::env::var("GATEKEY_NETWORK_ID").expect("GATEKEY_NETWORK_ID");
    let client = Client::connect(&url, &key).await?;
    println!("signed in as {}", client.session().await?.user.map(|u| u.email).unwrap_or_default());

    let gateways = client.gateways().await?;
    for gateway in &gateways {
        println!("gateway {} {}:{} {}", gateway.name, gateway.hostname, gateway.port, gateway.id);
    }
    let gateway = gateways.first().expect("a gateway");
    let generated = client.generate_config(&gateway.id).await?;
    let file = client.download_config(&generated.config_id).await?;
    println!("config {} ({} bytes, has key: {})", file.file_name, file.content.len(), file.content.contains("<key>"));

    let rule = client
        .create_access_rule(gatekey::v1::AccessRule {
            name: "sdk-web".into(),
            network_id,
            groups: vec!["staff".into()],
            destination_type: "ip".into(),
            destination: "10.90.0.5".into(),
            protocol: "tcp".into(),
            port_from: 443,
            ..Default::default()
        })
        .await?;
    println!("rules after create: {}", client.access_rules().await?.len());
    client.delete_access_rule(&rule.id).await?;
    println!("rules after delete: {}", client.access_rules().await?.len());
    Ok(())
}
