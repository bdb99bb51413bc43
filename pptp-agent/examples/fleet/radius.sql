-- PostgreSQL for a pptp-xdp fleet's FreeRADIUS: the role and database, then (as
-- that role) FreeRADIUS's own schemas and the address pool.
--
--   sudo -u postgres psql -v password="'change-me'" -f radius.sql
--   sudo -u postgres psql -d radius -f /etc/freeradius/3.0/mods-config/sql/main/postgresql/schema.sql
--   sudo -u postgres psql -d radius -f /etc/freeradius/3.0/mods-config/sql/ippool/postgresql/schema.sql
--   sudo -u postgres psql -d radius -v pool="'fleet'" -v first="'192.0.2.10'" -v count=241 -f pool.sql
--
-- (docs/fleet.md walks through the deployment.)
CREATE ROLE radius LOGIN PASSWORD :password;
CREATE DATABASE radius OWNER radius;
