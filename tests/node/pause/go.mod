module qlik-automations-operator/tests/node/pause

go 1.25
