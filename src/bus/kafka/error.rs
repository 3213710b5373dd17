//! librdkafka's errors as the bus's: retryable or not, and the ones a
//! consumer must stop on, with what to check.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::bus::record::BusError;

pub(crate) fn kafka_error(e: KafkaError) -> BusError {
    if let Some(cause) = fatal_cause(&e) {
        return BusError::Fatal {
            message: e.to_string(),
            cause,
        };
    }
    let retryable = match &e {
        KafkaError::MessageProduction(code) | KafkaError::MessageConsumption(code) => matches!(
            code,
            RDKafkaErrorCode::QueueFull
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::MessageTimedOut
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::NotEnoughReplicas
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::NotLeaderForPartition
        ),
        _ => false,
    };
    BusError::Kafka {
        message: e.to_string(),
        retryable,
    }
}

/// Why retrying cannot help with `e`, for the errors a consumer must stop
/// on: librdkafka keeps retrying these by itself, and so would a stage,
/// forever, while nothing gets through.
fn fatal_cause(e: &KafkaError) -> Option<&'static str> {
    use RDKafkaErrorCode as C;
    let code = e.rdkafka_error_code()?;
    Some(match code {
        C::Authentication | C::SaslAuthenticationFailed => {
            "the broker refused the credentials (check sasl.mechanism, sasl.username and sasl.password)"
        }
        C::UnsupportedSASLMechanism | C::IllegalSASLState => {
            "the broker does not accept this SASL mechanism (check sasl.mechanism)"
        }
        C::TopicAuthorizationFailed
        | C::GroupAuthorizationFailed
        | C::ClusterAuthorizationFailed
        | C::TransactionalIdAuthorizationFailed
        | C::DelegationTokenAuthorizationFailed => {
            "not authorized (check the broker's ACLs for this user, its topics and its consumer group)"
        }
        C::UnknownTopicOrPartition | C::UnknownTopic | C::UnknownPartition | C::UnknownTopicId => {
            "a topic or partition does not exist (smsflow creates its topics at start-up: was one deleted, or renamed in the pipeline?)"
        }
        // librdkafka gave up on this client for good.
        _ if matches!(e, KafkaError::MessageConsumptionFatal(_)) => "librdkafka reports a fatal error",
        _ => return None,
    })
}
