-- Search columns: the customer's name and email folded by the application (Unicode NFKC, then
-- toLowerCase, see src/search-text.ts), so a search compares folded text with folded text and finds
-- the same rows on SQLite (whose lower() and LIKE fold ASCII only) and on PostgreSQL (whose folding
-- depends on the database's locale). Written by CustomerRepository on every insert and update; rows
-- written before this migration are filled in by migrateCrm() (backfillCustomerSearch), and read as
-- lower(name) / email until then.

-- migrate:up
alter table customers add column name_search text;
alter table customers add column email_search text;

-- migrate:down
alter table customers drop column email_search;
alter table customers drop column name_search;
