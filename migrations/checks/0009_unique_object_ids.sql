-- Run before migration 9 on both backends: the Entra object ids that more than one user holds.
-- Each row names one; any row stops the migration with a message listing them.
SELECT CAST(azureactivedirectoryobjectid AS TEXT) || ' (' || COUNT(*) || ' users)'
FROM systemuser
WHERE azureactivedirectoryobjectid IS NOT NULL
GROUP BY azureactivedirectoryobjectid
HAVING COUNT(*) > 1
