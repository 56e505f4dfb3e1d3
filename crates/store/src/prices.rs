//! Prices and markups set through the admin UI and the JSON API (migration
//! 0026). Every write bumps the configuration version in its transaction,
//! so every replica rebuilds its price book (the registry snapshot) on its
//! next `reload_if_changed`, as for parameters. Amounts are millionths of
//! the broker's currency, markups hundredths of a percent, times ms.

use crate::{ms_to_time, Store, StoreError};
use chrono::{DateTime, Utc};

/// One stored price.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPrice {
    pub instance: String,
    /// `instance`, `volume` or `address`.
    pub item_kind: String,
    /// The instance or volume type (`""` for an address).
    pub item_name: String,
    pub effective_at: DateTime<Utc>,
    pub price: i64,
    pub set_by: String,
    pub set_at: DateTime<Utc>,
}

/// One stored markup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMarkup {
    pub instance: String,
    pub markup: i64,
    pub set_by: String,
    pub set_at: DateTime<Utc>,
}

type PriceRow = (String, String, String, i64, i64, String, i64);

async fn bump_config_version(tx: &mut sqlx::Transaction<'static, sqlx::Any>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO broker_meta (key, value) VALUES ('config_version', '1') \
         ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(broker_meta.value AS BIGINT) + 1 AS TEXT)",
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Every stored price, by instance, item and effective time.
    pub async fn list_prices(&self) -> Result<Vec<StoredPrice>, StoreError> {
        let rows: Vec<PriceRow> = sqlx::query_as(
            "SELECT instance, item_kind, item_name, effective_at, price, set_by, set_at FROM prices \
             ORDER BY instance, item_kind, item_name, effective_at",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(instance, item_kind, item_name, eff, price, set_by, at)| StoredPrice {
                instance,
                item_kind,
                item_name,
                effective_at: ms_to_time(eff),
                price,
                set_by,
                set_at: ms_to_time(at),
            })
            .collect())
    }

    /// Sets the price of an item from `effective_at` (replacing one set for
    /// the same time), stamped with the store's clock.
    pub async fn set_price(
        &self,
        instance: &str,
        item_kind: &str,
        item_name: &str,
        effective_at: i64,
        price: i64,
        by: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO prices (instance, item_kind, item_name, effective_at, price, set_by, set_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (instance, item_kind, item_name, effective_at) \
             DO UPDATE SET price = excluded.price, set_by = excluded.set_by, set_at = excluded.set_at",
        )
        .bind(instance)
        .bind(item_kind)
        .bind(item_name)
        .bind(effective_at)
        .bind(price)
        .bind(by)
        .bind(self.clock_ms())
        .execute(&mut *tx)
        .await?;
        bump_config_version(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes the price of an item effective at `effective_at`; whether
    /// there was one.
    pub async fn delete_price(&self, instance: &str, item_kind: &str, item_name: &str, effective_at: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let r = sqlx::query("DELETE FROM prices WHERE instance = $1 AND item_kind = $2 AND item_name = $3 AND effective_at = $4")
            .bind(instance)
            .bind(item_kind)
            .bind(item_name)
            .bind(effective_at)
            .execute(&mut *tx)
            .await?;
        let deleted = r.rows_affected() > 0;
        if deleted {
            bump_config_version(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    /// Every stored markup, by instance.
    pub async fn list_markups(&self) -> Result<Vec<StoredMarkup>, StoreError> {
        let rows: Vec<(String, i64, String, i64)> =
            sqlx::query_as("SELECT instance, markup, set_by, set_at FROM price_markups ORDER BY instance").fetch_all(self.pool()).await?;
        Ok(rows
            .into_iter()
            .map(|(instance, markup, set_by, at)| StoredMarkup { instance, markup, set_by, set_at: ms_to_time(at) })
            .collect())
    }

    /// Sets (`Some`) or removes the markup of `instance`.
    pub async fn set_markup(&self, instance: &str, markup: Option<i64>, by: &str) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        match markup {
            Some(m) => {
                sqlx::query(
                    "INSERT INTO price_markups (instance, markup, set_by, set_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (instance) DO UPDATE SET markup = excluded.markup, set_by = excluded.set_by, set_at = excluded.set_at",
                )
                .bind(instance)
                .bind(m)
                .bind(by)
                .bind(self.clock_ms())
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM price_markups WHERE instance = $1").bind(instance).execute(&mut *tx).await?;
            }
        }
        bump_config_version(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// What was used in a period and needs a price: the instance types of VMs,
/// the volume types of volumes, the instances with Elastic IPs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PricedUsage {
    /// (instance, instance type) of every VM not terminated or that changed state since the start,
    /// and the types VMs ran as before a change of their type since the start.
    pub instance_types: Vec<(String, String)>,
    /// (instance, volume type: `standard` when the cloud named none) of every volume that existed since the start.
    pub volume_types: Vec<(String, String)>,
    /// Instances with an Elastic IP allocated since the start.
    pub address_instances: Vec<String>,
}

impl Store {
    /// What was used from `from_ms` on (distinct, sorted).
    pub async fn priced_usage(&self, from_ms: i64) -> Result<PricedUsage, StoreError> {
        let instance_types: Vec<(String, String)> = sqlx::query_as(
            "SELECT DISTINCT v.instance, v.instance_type FROM vms v \
             WHERE v.state <> 'terminated' OR v.updated_at >= $1 \
             OR EXISTS (SELECT 1 FROM vm_state_history h WHERE h.vm_id = v.id AND h.at >= $1) \
             UNION SELECT v.instance, c.from_type FROM vm_type_changes c JOIN vms v ON v.id = c.vm_id WHERE c.at >= $1 \
             ORDER BY 1, 2",
        )
        .bind(from_ms)
        .fetch_all(self.pool())
        .await?;
        let volume_types: Vec<(String, String)> = sqlx::query_as(
            "SELECT DISTINCT instance, COALESCE(NULLIF(volume_type, ''), 'standard') FROM volumes \
             WHERE ended_at IS NULL OR ended_at >= $1 ORDER BY 1, 2",
        )
        .bind(from_ms)
        .fetch_all(self.pool())
        .await?;
        let address_instances: Vec<(String,)> =
            sqlx::query_as("SELECT DISTINCT instance FROM addresses WHERE ended_at IS NULL OR ended_at >= $1 ORDER BY instance")
                .bind(from_ms)
                .fetch_all(self.pool())
                .await?;
        Ok(PricedUsage { instance_types, volume_types, address_instances: address_instances.into_iter().map(|r| r.0).collect() })
    }
}
