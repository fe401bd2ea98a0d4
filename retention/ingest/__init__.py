"""The event ingestion service: webhooks in, `customer_event` signals out (see README)."""
