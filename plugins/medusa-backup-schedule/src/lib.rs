//! MedusaBackupSchedule policy.
