"""CRM sync: the customer's contact and the conversation's deal, upserted in HubSpot or Zoho CRM by a job."""
