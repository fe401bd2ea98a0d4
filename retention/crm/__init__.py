"""CSM tasks in the CRM the operator configured (HubSpot or Salesforce): created there once,
closed there when done here, and completed here when done there (docs/crm.md)."""
