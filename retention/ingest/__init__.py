"""The event ingestion service: webhooks in, `customer_event` signals out (docs/ingestion.md)."""
