//! IPMI over LAN (RMCP+) for BMCs without Redfish: Get Device ID and FRU inventory (being written).
