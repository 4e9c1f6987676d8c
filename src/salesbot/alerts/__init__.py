"""Team alerts: record an event once (`service.record_alert`), deliver it to every configured channel."""
