"""Commercial terms applied from the business's data: quote pricing (catalog prices, discount rules) and financing
(the playbook's plans). The agent's tools, the API and the admin call these; none of them computes terms itself."""
