//! The system job table (`asyncoperation`): the columns the BulkDelete job writes and its
//! worker reads, named once, and the values of its choice columns (Dataverse's
//! AsyncOperation state, status and operation type).

pub const ASYNC_OPERATION: &str = "asyncoperation";
pub const NAME: &str = "name";
pub const OPERATION_TYPE: &str = "operationtype";
pub const STATE_CODE: &str = "statecode";
pub const STATUS_CODE: &str = "statuscode";
pub const MESSAGE: &str = "message";
pub const FRIENDLY_MESSAGE: &str = "friendlymessage";
pub const ERROR_CODE: &str = "errorcode";
pub const DATA: &str = "data";
pub const HOST_ID: &str = "hostid";
pub const STARTED_ON: &str = "startedon";
pub const COMPLETED_ON: &str = "completedon";
pub const SUCCESS_COUNT: &str = "successcount";
pub const FAILURE_COUNT: &str = "failurecount";

/// `operationtype`: Bulk Delete.
pub const BULK_DELETE: i64 = 13;

/// `statecode`.
pub const STATE_READY: i64 = 0;
pub const STATE_LOCKED: i64 = 2;
pub const STATE_COMPLETED: i64 = 3;

/// `statuscode`.
pub const STATUS_WAITING_FOR_RESOURCES: i64 = 0;
pub const STATUS_IN_PROGRESS: i64 = 20;
pub const STATUS_SUCCEEDED: i64 = 30;
pub const STATUS_FAILED: i64 = 31;
