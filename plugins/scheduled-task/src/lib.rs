//! ScheduledTask policy.
