namespace RamPay.Pipeline; public static class Placeholder {}
